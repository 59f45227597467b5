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
import { existsSync, lstatSync, mkdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fillFilesystem, mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { applyActions, daemonLayout, pattern, readAt, releaseByHand, runCli, startDaemon, type DaemonProc } from '../daemon/harness.js';
import { ResidentMap } from '../../src/chunks/resident.js';
import { decodeRecord, XATTR_RESIDENT, XATTR_STATE } from '../../src/engine/state-record.js';
import { deriveState } from '../../src/engine/facts.js';
import { futimens, lgetxattr, nsToTimespec } from '../../src/kernel/libc.js';

const MiB = 1024 * 1024;
const SIZE = 5 * MiB + 321; // six 1 MiB chunks, the last one short
const record = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));




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
    let acts = await applyActions(L.policy, L.stateDir);
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

    acts = await applyActions(L.policy, L.stateDir);
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
    acts = await applyActions(L.policy, L.stateDir);
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


/** Released, chunks 1 and 3 read back (partial), chunk 3 then written in place with mtime put back. */
async function stalePartial(p: string, seed: number): Promise<{ want: Buffer; mtimeNs: string }> {
  const rec = record(p)!;
  assert.equal(rec.state, 'released');
  const want = pattern(SIZE, seed);
  for (const off of [1.5 * MiB, 3.5 * MiB]) assert.ok((await readAt(p, off, 10)).equals(want.subarray(off, off + 10)));
  assert.equal(record(p)?.state, 'partial');
  const patch = pattern(70_000, seed + 50);
  await writeInPlaceKeepingMtime(p, patch, 3 * MiB + 4000, rec.copy!.mtimeNs);
  patch.copy(want, 3 * MiB + 4000);
  return { want, mtimeNs: rec.copy!.mtimeNs };
}

// FAULT INJECTION (src/engine/fault.ts, TIER_FAULT_FILE): `persist-resident N throw` makes the
// recall service's bitmap xattr write fail (EIO) while its in-memory map keeps the bit;
// `partial-after-fill-chunk 1 daemon` SIGKILLs the whole daemon right after the first chunk
// the completion of a stale partial file writes. Plus a really full filesystem, and a copy
// made without chunk sums (releaseByHand, as older versions did).
describe('re-releasing a stale partial file: full filesystem, a bitmap the service could not store, a copy without sums, kill -9 while filling (ext4)', () => {
  let fs: LoopFs;
  let L: ReturnType<typeof daemonLayout>;
  let d: DaemonProc;
  let faultFile: string;
  const start = () => startDaemon([L.policy], L.stateDir, ['--reconcile-interval', '0'], { env: { TIER_FAULT_FILE: faultFile } });
  before(async () => {
    fs = mountLoopFs('ext4');
    L = daemonLayout(fs);
    faultFile = join(fs.scratch, 'fault');
    // A copy made before chunk sums existed: the daemon marks it from the catalog at start-up.
    mkdirSync(L.stateDir, { recursive: true });
    writeFileSync(join(L.data, 'nosums.bin'), pattern(SIZE, 30));
    await releaseByHand(join(L.data, 'nosums.bin'), 'slow', L.tierDir, L.stateDir);
    d = start();
    await d.ready;
  });
  after(async () => {
    await d?.stop();
    fs?.unmount();
  });

  test('not enough free space to recall the rest: busy, nothing written, mtime and bitmap kept; with space it completes as dirty', async () => {
    const p = join(L.data, 'enospc.bin');
    writeFileSync(p, pattern(SIZE, 10));
    assert.equal((await applyActions(L.policy, L.stateDir)).get('enospc.bin')?.status, 'done');
    const { want, mtimeNs } = await stalePartial(p, 10);
    const bits = lgetxattr(p, XATTR_RESIDENT);
    const blocks = lstatSync(p).blocks;
    const fillers = fillFilesystem(fs.dir);
    try {
      const a = (await applyActions(L.policy, L.stateDir)).get('enospc.bin')!;
      assert.equal(a.status, 'busy', JSON.stringify(a));
      assert.match(a.message ?? '', /not enough free space .*bytes missing/);
      assert.equal(record(p)?.state, 'partial');
      assert.deepEqual(lgetxattr(p, XATTR_RESIDENT), bits, 'bitmap unchanged');
      assert.equal(lstatSync(p, { bigint: true }).mtimeNs.toString(), mtimeNs, 'the user mtime kept');
      assert.equal(lstatSync(p).blocks, blocks, 'nothing written');
    } finally {
      for (const f of fillers) unlinkSync(f);
    }
    const b = (await applyActions(L.policy, L.stateDir)).get('enospc.bin')!;
    assert.equal(b.status, 'skipped', JSON.stringify(b));
    assert.match(b.message ?? '', /chunk 3 differs.*recorded dirty/);
    assert.equal(record(p)?.state, 'dirty');
    assert.equal(lstatSync(p, { bigint: true }).mtimeNs.toString(), mtimeNs);
    assert.ok((await readFile(p)).equals(want));
  });

  test('a chunk resident only in the recall service memory (bitmap write failed) is verified and never overwritten', async () => {
    const p = join(L.data, 'mem.bin');
    writeFileSync(p, pattern(SIZE, 20));
    assert.equal((await applyActions(L.policy, L.stateDir)).get('mem.bin')?.status, 'done');
    const rec0 = record(p)!;
    const want = pattern(SIZE, 20);
    assert.ok((await readAt(p, 1.5 * MiB, 10)).equals(want.subarray(1.5 * MiB, 1.5 * MiB + 10)));
    writeFileSync(faultFile, 'persist-resident 1 throw');
    try {
      // Chunk 3 is fetched and durable, its bit set in memory; storing the bitmap fails: EIO.
      await assert.rejects(readAt(p, 3.5 * MiB, 10), { code: 'EIO' });
      // The bit it could not store is not kept in memory either (fill.ts): the next access
      // fetches and tries to store it again, it does not pass as resident.
      await assert.rejects(readAt(p, 3.5 * MiB, 10), { code: 'EIO' });
    } finally {
      unlinkSync(faultFile);
    }
    const disk = new ResidentMap(6, lgetxattr(p, XATTR_RESIDENT));
    assert.deepEqual([0, 1, 2, 3, 4, 5].filter((i) => disk.has(i)), [1], 'on disk only chunk 1');
    // The service undid the bit it could not store (fill.ts): the write fetches chunk 3
    // again first. Either way the chunk the user wrote must be verified, never overwritten.
    const patch = pattern(70_000, 70);
    await writeInPlaceKeepingMtime(p, patch, 3 * MiB + 4000, rec0.copy!.mtimeNs);
    patch.copy(want, 3 * MiB + 4000);
    assert.equal(record(p)?.state, 'partial');

    const a = (await applyActions(L.policy, L.stateDir)).get('mem.bin')!;
    assert.notEqual(a.status, 'done', `released with a stale copy: ${JSON.stringify(a)}`);
    assert.equal(a.status, 'skipped', JSON.stringify(a));
    assert.match(a.message ?? '', /chunk 3 differs.*recorded dirty/);
    assert.equal(record(p)?.state, 'dirty');
    assert.ok((await readFile(p)).equals(want), 'the write in chunk 3 survives');
  });

  test('a copy without chunk sums: not filled, skipped with a clear message, left partial; reads keep the write', async () => {
    const p = join(L.data, 'nosums.bin');
    assert.equal(record(p)?.copy?.sumsSha, undefined);
    const { want, mtimeNs } = await stalePartial(p, 30);
    const bits = lgetxattr(p, XATTR_RESIDENT);
    const blocks = lstatSync(p).blocks;
    const a = (await applyActions(L.policy, L.stateDir)).get('nosums.bin')!;
    assert.equal(a.status, 'skipped', JSON.stringify(a));
    assert.match(a.message ?? '', /chunk 3 differs.*no chunk sums.*left partial/);
    assert.equal(record(p)?.state, 'partial');
    assert.deepEqual(lgetxattr(p, XATTR_RESIDENT), bits);
    assert.equal(lstatSync(p).blocks, blocks, 'nothing written');
    assert.equal(lstatSync(p, { bigint: true }).mtimeNs.toString(), mtimeNs);
    assert.ok((await readFile(p)).equals(want), 'recalled as before, the write kept');
    // Whole again (archived over a stale copy): the next release hashes it and uploads anew.
    const b = (await applyActions(L.policy, L.stateDir)).get('nosums.bin')!;
    assert.equal(b.status, 'done', JSON.stringify(b));
    assert.equal(b.uploaded, SIZE);
    assert.ok((await readFile(p)).equals(want));
  });

  test('kill -9 right after the first chunk written: the user mtime is already back, nothing lost', async () => {
    const p = join(L.data, 'kill.bin');
    writeFileSync(p, pattern(SIZE, 40));
    assert.equal((await applyActions(L.policy, L.stateDir)).get('kill.bin')?.status, 'done');
    const { want, mtimeNs } = await stalePartial(p, 40);
    writeFileSync(faultFile, 'partial-after-fill-chunk 1 daemon');
    await runCli(['apply', L.policy, '--state-dir', L.stateDir, '--json']);
    await d.exited;
    assert.equal(existsSync(faultFile), false, 'the fault point was reached');
    assert.equal(lstatSync(p, { bigint: true }).mtimeNs.toString(), mtimeNs, 'mtime is the user one, not the fill time');
    assert.equal(record(p)?.state, 'partial');
    d = start();
    await d.ready;
    assert.ok((await readFile(p)).equals(want), 'byte-exact through the next daemon, the write kept');
    assert.equal(lstatSync(p, { bigint: true }).mtimeNs.toString(), mtimeNs);
  });
});
