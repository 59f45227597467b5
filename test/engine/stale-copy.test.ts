// The stale-copy guard on release (src/engine/verify-copy.ts), end to end through a real
// `tier daemon` on loop-mounted ext4 (-I 512): an archived file rewritten with other bytes
// of the same size, its mtime put back (cp --preserve=timestamps, touch -d, tar x), still
// looks 'archived' by size and mtime. Releasing it must not reuse the old copy: the file
// must read back with its NEW bytes. A chmod alone (ctime moves, content does not) costs a
// hash and keeps the copy; an untouched file is not even hashed.
import { test, describe, before, after } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, openSync, writeFileSync, writeSync, lstatSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { daemonLayout, pattern, runCli, startDaemon, writePolicy } from '../helpers/daemon.js';
import { decodeRecord, XATTR_STATE, type StateRecord } from '../../src/record/state-record.js';
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

// The same guard in archive mode (src/engine/execute.ts): an archive-only policy must not
// keep calling a same-size, mtime-restored rewrite 'already archived' with its old copy.
describe('archive never keeps a stale copy of a same-size rewrite with its mtime restored (ext4, archive-only policy)', () => {
  let fs: LoopFs;
  let L: ReturnType<typeof daemonLayout>;
  let policy: string;
  before(() => {
    fs = mountLoopFs('ext4');
    L = daemonLayout(fs);
    policy = writePolicy(fs.scratch, L.data, L.tierDir, 'size >= 0B -> archive to slow', '', 'archive.hsmpolicy');
  });
  after(() => fs?.unmount());

  async function applyActs(): Promise<Map<string, { status: string; uploaded: number; message?: string }>> {
    const r = await runCli(['apply', policy, '--state-dir', L.stateDir, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const acts = new Map();
    for (const l of r.stdout.trim().split('\n')) {
      const e = JSON.parse(l);
      if (e.type === 'action') acts.set(e.path, e);
    }
    return acts;
  }

  test('a rewrite is archived anew (new key, new hash); a chmod is hashed once and kept; an untouched file is skipped unhashed', async () => {
    const rewritten = join(L.data, 'rewritten.bin');
    const chmodded = join(L.data, 'chmod.bin');
    const same = join(L.data, 'same.bin');
    writeFileSync(rewritten, pattern(SIZE, 21));
    writeFileSync(chmodded, pattern(SIZE, 22));
    writeFileSync(same, pattern(SIZE, 23));
    const d = startDaemon([policy], L.stateDir, ['--reconcile-interval', '0', '--log-level', 'debug']);
    try {
      await d.ready;
      let acts = await applyActs();
      for (const n of ['rewritten.bin', 'chmod.bin', 'same.bin']) assert.equal(acts.get(n)?.status, 'done', JSON.stringify(acts.get(n)));
      const before = new Map([rewritten, chmodded, same].map((p) => [p, record(p)!]));
      for (const r of before.values()) assert.equal(r.state, 'archived');

      rewriteKeepingMtime(rewritten, pattern(SIZE, 31), before.get(rewritten)!);
      chmodSync(chmodded, 0o640);
      acts = await applyActs();
      const a = acts.get('rewritten.bin')!;
      assert.equal(a.status, 'done', `kept a stale copy: ${JSON.stringify(a)}`);
      assert.equal(a.uploaded, SIZE);
      const rec = record(rewritten)!;
      assert.equal(rec.state, 'archived');
      assert.notEqual(rec.copy!.key, before.get(rewritten)!.copy!.key, 'uploaded under a new key');
      assert.equal(rec.copy!.sha256, createHash('sha256').update(pattern(SIZE, 31)).digest('hex'), 'the copy holds the new bytes');
      assert.equal(rec.gen, before.get(rewritten)!.gen + 1);
      const stored = await readFile(join(L.tierDir, rec.copy!.key));
      assert.ok(stored.equals(pattern(SIZE, 31)), 'the tier object is the new content');
      assert.equal(acts.get('chmod.bin')?.status, 'skipped', JSON.stringify(acts.get('chmod.bin')));
      assert.equal(record(chmodded)!.copy!.key, before.get(chmodded)!.copy!.key, 'a chmod alone: hashed, equal, kept');
      assert.equal(acts.get('same.bin'), undefined, 'ctime as the engine left it: nothing planned');
      assert.equal(record(same)!.copy!.key, before.get(same)!.copy!.key);

      // Every file is as the engine left it now (the hash recorded ctime): nothing planned, nothing hashed.
      acts = await applyActs();
      for (const n of ['rewritten.bin', 'chmod.bin', 'same.bin']) assert.equal(acts.get(n), undefined, `${n}: ${JSON.stringify(acts.get(n))}`);
      assert.equal(record(rewritten)!.copy!.key, rec.copy!.key);
      const hashed = (l: Record<string, unknown>) => l.msg === 'ctime moved, content hashed: the copy is still valid';
      for (const until = Date.now() + 10_000; !d.logs.some(hashed); await sleep(20)) if (Date.now() > until) assert.fail(`no hash log line:\n${d.stderrText()}`);
      await sleep(200);
      assert.deepEqual(d.logs.filter(hashed).map((l) => l.path), [chmodded], 'only the chmodded file was hashed and found valid, once');
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  });
});
