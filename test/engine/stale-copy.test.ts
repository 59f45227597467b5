// The stale-copy guard on release (src/engine/verify-copy.ts), end to end through a real
// `tier daemon` on loop-mounted ext4 (-I 512): an archived file rewritten with other bytes
// of the same size, its mtime put back (cp --preserve=timestamps, touch -d, tar x), still
// looks 'archived' by size and mtime. Releasing it must not reuse the old copy: the file
// must read back with its NEW bytes. A chmod alone (ctime moves, content does not) costs a
// hash and keeps the copy; an untouched file is not even hashed.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, openSync, writeFileSync, writeSync, lstatSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { daemonLayout, pattern, runCli, startDaemon } from '../daemon/harness.js';
import { decodeRecord, XATTR_STATE, type StateRecord } from '../../src/engine/state-record.js';
import { deriveState } from '../../src/engine/facts.js';
import { futimens, lgetxattr, nsToTimespec } from '../../src/kernel/libc.js';

const SIZE = 3 * 1024 * 1024 + 123;
const record = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

/** Overwrites `p` in place (same inode, same size) with `b`, then puts mtime back to the record's. */
function rewriteKeepingMtime(p: string, b: Buffer, rec: StateRecord): void {
  const fd = openSync(p, 'r+');
  try {
    writeSync(fd, b, 0, b.length, 0);
    const st = lstatSync(p, { bigint: true });
    futimens(fd, nsToTimespec(st.atimeNs), nsToTimespec(BigInt(rec.copy!.mtimeNs)), p);
  } finally {
    closeSync(fd);
  }
  const st = lstatSync(p, { bigint: true });
  // The hole this guards: by size and mtime the file still looks archived.
  assert.equal(deriveState(record(p), { size: Number(st.size), mtimeNs: st.mtimeNs.toString() }), 'archived');
}

describe('release never reuses a stale copy of a same-size rewrite with its mtime restored (ext4)', () => {
  let fs: LoopFs;
  let L: ReturnType<typeof daemonLayout>;
  before(() => {
    fs = mountLoopFs('ext4');
    L = daemonLayout(fs);
  });
  after(() => fs?.unmount());

  test('rewritten while the daemon was down, and while it runs: release uploads anew; reads give the new bytes', async () => {
    const down = join(L.data, 'down.bin');
    const up = join(L.data, 'up.bin');
    const same = join(L.data, 'same.bin');
    const chmodded = join(L.data, 'chmod.bin');
    writeFileSync(down, pattern(SIZE, 1));
    writeFileSync(up, pattern(SIZE, 2));
    writeFileSync(same, pattern(SIZE, 3));
    writeFileSync(chmodded, pattern(SIZE, 4));
    const arch = await runCli(['archive', down, up, same, chmodded, '--config', L.policy, '--state-dir', L.stateDir]);
    assert.equal(arch.code, 0, arch.stdout + arch.stderr);
    const before = new Map([down, up, same, chmodded].map((p) => [p, record(p)!]));
    chmodSync(chmodded, 0o640); // ctime moves, the content does not: hashed, then reused
    for (const r of before.values()) assert.equal(r.state, 'archived');

    rewriteKeepingMtime(down, pattern(SIZE, 11), before.get(down)!);
    // No reconcile pass at start: it would find the rewrite by hash first; the guard is under test.
    const d = startDaemon([L.policy], L.stateDir, ['--reconcile-interval', '0', '--log-level', 'debug']);
    try {
      await d.ready;
      rewriteKeepingMtime(up, pattern(SIZE, 12), before.get(up)!);
      const r = await runCli(['release', down, up, same, chmodded, '--config', L.policy, '--state-dir', L.stateDir]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      for (const p of [down, up, same, chmodded]) assert.equal(record(p)?.state, 'released', p);
      assert.ok(lstatSync(down).blocks === 0 && lstatSync(up).blocks === 0 && lstatSync(same).blocks === 0, 'every block freed');
      assert.ok((await readFile(down)).equals(pattern(SIZE, 11)), 'down.bin reads its new bytes');
      assert.ok((await readFile(up)).equals(pattern(SIZE, 12)), 'up.bin reads its new bytes');
      assert.ok((await readFile(same)).equals(pattern(SIZE, 3)), 'same.bin reads its bytes');
      // The rewritten files got a fresh copy (new key, new hash); the untouched one kept its copy.
      for (const p of [down, up]) {
        assert.notEqual(record(p)!.copy!.key, before.get(p)!.copy!.key, `${p}: uploaded anew`);
        assert.notEqual(record(p)!.copy!.sha256, before.get(p)!.copy!.sha256);
      }
      assert.equal(record(same)!.copy!.key, before.get(same)!.copy!.key, 'an unchanged file reuses its copy');
      assert.equal(record(chmodded)!.copy!.key, before.get(chmodded)!.copy!.key, 'a chmod alone: hashed, equal, reused');
      assert.ok((await readFile(chmodded)).equals(pattern(SIZE, 4)));
      // The log line may trail the CLI's answer on the pipe; give it a generous deadline.
      const stale = (l: Record<string, unknown>) => l.msg === 'archived copy is stale: uploading a fresh one' && l.path === down;
      for (const until = Date.now() + 10_000; !d.logs.some(stale); await sleep(20)) if (Date.now() > until) assert.fail(`no stale-copy log line:\n${d.stderrText()}`);
      const hashed = (l: Record<string, unknown>) => l.msg === 'ctime moved, content hashed: the copy is still valid';
      assert.deepEqual(d.logs.filter(hashed).map((l) => l.path), [chmodded], 'only the chmodded file was hashed and found valid');
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  });
});
