// The stale-copy guard on partial re-release (src/engine/release-partial.ts +
// verify-resident.ts), end to end through a real `tier daemon` on loop-mounted ext4
// (-I 512). A released file is read in part (partial); a user overwrites a resident chunk
// in place (same size: the handler allows it, nothing is missing) and puts the mtime
// back. By size and mtime the file still matches its copy. The next release must not
// punch it (reads would give the copy's OLD bytes: the write lost): the resident chunks
// are hashed against the copy's chunk sums, the mismatch recalls the rest and records the
// file dirty; the run after that uploads it anew and it reads back with its new bytes.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, statSync, writeFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { daemonLayout, pattern, runCli, startDaemon, type DaemonProc } from '../daemon/harness.js';
import { decodeRecord, XATTR_RESIDENT, XATTR_STATE } from '../../src/engine/state-record.js';
import { deriveState } from '../../src/engine/facts.js';
import { futimens, lgetxattr, nsToTimespec } from '../../src/kernel/libc.js';

const MiB = 1024 * 1024;
const SIZE = 5 * MiB + 321; // six 1 MiB chunks, the last one short
const record = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

interface Action {
  path: string;
  status: string;
  uploaded: number;
  message?: string;
}

async function apply(policy: string, stateDir: string): Promise<Map<string, Action>> {
  const r = await runCli(['apply', policy, '--state-dir', stateDir, '--json']);
  assert.ok(r.code === 0 || r.code === 1, r.stdout + r.stderr);
  const acts = new Map<string, Action>();
  for (const l of r.stdout.trim().split('\n')) {
    const e = JSON.parse(l);
    if (e.type === 'action') acts.set(e.path, e);
  }
  return acts;
}

/** One pread (the daemon fetches just the chunk under it). */
async function readAt(p: string, off: number, n: number): Promise<Buffer> {
  const fh = await open(p, 'r');
  try {
    const b = Buffer.alloc(n);
    const { bytesRead } = await fh.read(b, 0, n, off);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Writes `patch` at `off` in place (same size), then puts mtime back to `mtimeNs` (touch -d @orig). */
async function writeInPlaceKeepingMtime(p: string, patch: Buffer, off: number, mtimeNs: string): Promise<void> {
  const fh = await open(p, 'r+');
  try {
    await fh.write(patch, 0, patch.length, off);
    const st = lstatSync(p, { bigint: true });
    futimens(fh.fd, nsToTimespec(st.atimeNs), nsToTimespec(BigInt(mtimeNs)), p);
  } finally {
    await fh.close();
  }
}

describe('a partial file written in place over a resident chunk, mtime put back, is never re-released with its stale copy (ext4)', () => {
  let fs: LoopFs;
  let L: ReturnType<typeof daemonLayout>;
  let d: DaemonProc;
  before(async () => {
    fs = mountLoopFs('ext4');
    L = daemonLayout(fs);
    // No reconcile pass: the guard under test must find the change by itself.
    d = startDaemon([L.policy], L.stateDir, ['--reconcile-interval', '0']);
    await d.ready;
  });
  after(async () => {
    await d?.stop();
    fs?.unmount();
  });

  test('release hashes the resident chunks, finds the write, keeps every byte and records dirty; the next run uploads anew', async () => {
    const p = join(L.data, 'edited.bin');
    const q = join(L.data, 'untouched.bin');
    const want = pattern(SIZE, 1);
    writeFileSync(p, want);
    writeFileSync(q, pattern(SIZE, 2));
    let acts = await apply(L.policy, L.stateDir);
    for (const n of ['edited.bin', 'untouched.bin']) assert.equal(acts.get(n)?.status, 'done', JSON.stringify(acts.get(n)));
    const rec0 = record(p)!;
    assert.equal(rec0.state, 'released');

    // Chunks 1 and 3 come back (partial), then chunk 3 is overwritten in place.
    for (const f of [p, q]) for (const off of [1.5 * MiB, 3.5 * MiB]) await readAt(f, off, 10);
    assert.equal(record(p)?.state, 'partial');
    const patch = pattern(70_000, 99);
    await writeInPlaceKeepingMtime(p, patch, 3 * MiB + 4000, rec0.copy!.mtimeNs);
    patch.copy(want, 3 * MiB + 4000);
    const st = lstatSync(p, { bigint: true });
    // The hole this guards: by size and mtime the file is still a partial copy of its object.
    assert.equal(st.mtimeNs.toString(), rec0.copy!.mtimeNs);
    assert.equal(deriveState(record(p), { size: Number(st.size), mtimeNs: st.mtimeNs.toString() }), 'partial');

    acts = await apply(L.policy, L.stateDir);
    const a = acts.get('edited.bin')!;
    assert.notEqual(a.status, 'done', `released with a stale copy: ${JSON.stringify(a)}`);
    assert.equal(a.status, 'skipped', JSON.stringify(a));
    assert.match(a.message ?? '', /written in place .*chunk 3 differs.*recorded dirty/);
    const rec1 = record(p)!;
    assert.equal(rec1.state, 'dirty');
    assert.equal(rec1.copy!.key, rec0.copy!.key, 'the copy is kept in the dirty record');
    assert.equal(lgetxattr(p, XATTR_RESIDENT), null, 'no resident map left');
    const st1 = lstatSync(p, { bigint: true });
    assert.equal(st1.mtimeNs, st.mtimeNs, 'mtime kept');
    assert.ok(Number(st1.blocks) * 512 >= SIZE, 'recalled whole: nothing left to fetch');
    assert.ok((await readFile(p)).equals(want), 'the write survives; the missing chunks hold the copy');
    // The untouched partial file beside it is released as before (same key, no upload).
    assert.equal(acts.get('untouched.bin')?.status, 'done', JSON.stringify(acts.get('untouched.bin')));
    assert.equal(acts.get('untouched.bin')?.uploaded, 0);
    assert.equal(statSync(q).blocks, 0);
    assert.ok((await readFile(q)).equals(pattern(SIZE, 2)));

    // The next run archives the new bytes: a new key, released, reads back byte-exact.
    acts = await apply(L.policy, L.stateDir);
    const b = acts.get('edited.bin')!;
    assert.equal(b.status, 'done', JSON.stringify(b));
    assert.equal(b.uploaded, SIZE);
    const rec2 = record(p)!;
    assert.equal(rec2.state, 'released');
    assert.notEqual(rec2.copy!.key, rec0.copy!.key);
    assert.notEqual(rec2.copy!.sha256, rec0.copy!.sha256);
    assert.equal(statSync(p).blocks, 0);
    assert.ok((await readFile(p)).equals(want), 'reads the new bytes from the new copy');
    const logged = (l: Record<string, unknown>) => typeof l.msg === 'string' && l.msg.startsWith('partially recalled file differs from its copy') && l.path === p;
    for (const until = Date.now() + 10_000; !d.logs.some(logged); await sleep(20)) if (Date.now() > until) assert.fail(`no log line:\n${d.stderrText()}`);
  });
});
