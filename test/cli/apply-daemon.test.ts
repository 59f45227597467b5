// `tier apply` end to end through a real `tier daemon` (supervisor, worker, recall service,
// control socket) on loop-mounted ext4 and xfs: releases happen in the daemon, files read
// back byte-exact, a busy file is skipped, a file modified after archiving is re-archived
// before release, and a second apply does no new work.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, closeSync, mkdirSync, openSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { runCli, startDaemon, type DaemonProc } from '../helpers/daemon.js';

const record = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

// Async: the daemon answers recalls of files this test reads, so never block the loop.
const tier = (...args: string[]) => runCli(args).then((r) => ({ code: r.code, out: r.stdout, err: r.stderr }));

for (const type of ['ext4', 'xfs'] as const) {
  describe(`tier apply through tier daemon on ${type}`, () => {
    let fs: LoopFs;
    let daemon: DaemonProc | undefined;
    let policy: string;
    let state: string;
    let data: string;
    const content = new Map<string, Buffer>();
    before(async () => {
      fs = mountLoopFs(type);
      data = join(fs.dir, 'data');
      state = join(fs.scratch, 'state');
      mkdirSync(data);
      const old = new Date(Date.now() - 60 * 86_400_000);
      for (const [name, n] of [['a.bin', 3_000_001], ['b with space.bin', 4097], ['busy.bin', 10_000], ['later.bin', 20_000]] as const) {
        const b = Buffer.alloc(n);
        for (let i = 0; i < n; i++) b[i] = (i * 13 + n) & 0xff;
        const p = join(data, name);
        writeFileSync(p, b);
        utimesSync(p, old, old);
        content.set(p, b);
      }
      policy = join(fs.scratch, 'p.hsmpolicy');
      writeFileSync(
        policy,
        `tier nas { local "${join(fs.scratch, 'tier')}" }
fileset d { root "${data}" }
policy p on d {
  rule later: name == "later.bin" -> archive to nas
  rule old: last_mod > 30d -> release to nas
}
`,
      );
      daemon = startDaemon([policy], state);
      await daemon.ready;
    });
    after(async () => {
      await daemon?.stop();
      fs?.unmount();
    });

    test('releases in the daemon: blocks freed, mtime kept, busy skipped, reads byte-exact', async () => {
      const a = join(data, 'a.bin');
      const mtime = statSync(a, { bigint: true }).mtimeNs;
      const busy = openSync(join(data, 'busy.bin'), 'r');
      let r;
      try {
        r = await tier('apply', policy, '--state-dir', state);
      } finally {
        closeSync(busy);
      }
      assert.equal(r.code, 0, r.err + r.out);
      assert.match(r.out, /done\s+release\s+nas.*a\.bin/);
      assert.match(r.out, /busy\s+release\s+nas.*busy\.bin/);
      assert.match(r.out, /done\s+archive\s+nas.*later\.bin/);
      assert.equal(record(a)?.state, 'released');
      assert.equal(record(join(data, 'busy.bin')), null);
      assert.equal(statSync(a, { bigint: true }).mtimeNs, mtime);
      assert.ok(statSync(a).blocks === 0, String(statSync(a).blocks));
      assert.ok((await readFile(join(data, 'b with space.bin'))).equals(content.get(join(data, 'b with space.bin'))!));
    });

    test('a file modified after archiving is re-archived before release; a second apply does no new work', async () => {
      const later = join(data, 'later.bin');
      const firstKey = record(later)!.copy!.key;
      appendFileSync(later, 'more');
      const old = new Date(Date.now() - 60 * 86_400_000);
      utimesSync(later, old, old);
      writeFileSync(policy, (await readFile(policy, 'utf8')).replace('rule later: name == "later.bin" -> archive to nas\n', ''));
      const r = await tier('apply', policy, '--state-dir', state, '--json');
      assert.equal(r.code, 0, r.err);
      const ev = r.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .find((e) => e.type === 'action' && e.path === 'later.bin');
      assert.equal(ev.status, 'done');
      assert.equal(ev.uploaded, 20_004, 'uploaded again: the tier copy was stale');
      const rec = record(later)!;
      assert.equal(rec.state, 'released');
      assert.notEqual(rec.copy!.key, firstKey);
      assert.ok((await readFile(later)).equals(Buffer.concat([content.get(later)!, Buffer.from('more')])));
      // Everything read back is archived now; releasing it again needs no upload, and a
      // third run finds nothing to do.
      await tier('apply', policy, '--state-dir', state);
      const again = await tier('apply', policy, '--state-dir', state, '--json');
      const summary = JSON.parse(again.out.trim().split('\n').at(-1)!);
      assert.equal(summary.policies[0].planned, 0);
      assert.equal(summary.uploaded, 0);
      assert.ok((await readFile(join(data, 'a.bin'))).equals(content.get(join(data, 'a.bin'))!));
    });
  });
}
