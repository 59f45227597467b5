// Chunk verification: every fetched chunk is checked against its SHA-256 in the copy's
// `${key}.sums` object (itself checked against the record) before it is written. A corrupt
// chunk gives EIO for the reads that need it, nothing written, no resident bit; other
// chunks read byte-exact; a corrupt or missing sums object gives EIO; records of the
// older format (no sums) still recall. The tier objects are corrupted on disk (local tier).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sumsKey } from '../../src/record/state-record.js';
import { ResidentMap } from '../../src/chunks/resident.js';
import { makeReleased, pattern, residentOf, run, startHarness, stateOf, type Harness } from './harness.js';

const CHUNK = 256 * 1024;

/** Overwrites bytes of the tier object under `key` in place (same size). */
function scribble(h: Harness, key: string, offset: number, bytes: Buffer): void {
  const fd = openSync(join(h.fs.scratch, 'tier', key), 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** dd of [offset, offset+len) by bytes. */
const readRange = (path: string, offset: number, len: number) =>
  run('dd', [`if=${path}`, 'iflag=skip_bytes,count_bytes', `skip=${offset}`, `count=${len}`, 'bs=65536', 'status=none']);

/** Bit i of the stored resident map of a file of `n` chunks (either form: chunks/resident.ts). */
function residentBit(out: Buffer | null, i: number, n = 9): boolean {
  if (!out) return false;
  const text = out.toString('latin1');
  const stored = text.startsWith('0x') ? Buffer.from(text.trim().slice(2), 'hex') : out;
  return ResidentMap.fromStored(n, stored).has(i);
}

describe('chunk verification (local tier, 256 KiB chunks)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ type: 'ext4', tuning: { chunk: CHUNK, readahead: 0 } });
  });
  after(async () => h.close());

  test('a corrupt chunk in the middle: EIO for its reads, nothing written; other chunks byte-exact; repaired: read again', async () => {
    const data = pattern(8 * CHUNK + 100, 31); // 9 chunks, the last one 100 bytes
    const path = await makeReleased(h, 'mid.bin', data);
    const bad = 4;
    const good = data.subarray(bad * CHUNK + 1000, bad * CHUNK + 1016);
    scribble(h, 'k/mid.bin', bad * CHUNK + 1000, Buffer.alloc(16, 0x5a));

    const r = await readRange(path, bad * CHUNK + 500, 4096);
    assert.notEqual(r.code, 0, 'read of the corrupt chunk fails');
    assert.match(r.stderr, /Input\/output error/);
    assert.equal(r.stdout.length, 0, 'no byte of the corrupt chunk reaches the reader');

    for (const i of [0, 3, 5, 8]) {
      const start = i * CHUNK;
      const len = Math.min(CHUNK, data.length - start);
      const ok = await readRange(path, start, len);
      assert.equal(ok.code, 0, `chunk ${i}: ${ok.stderr}`);
      assert.ok(ok.stdout.equals(data.subarray(start, start + len)), `chunk ${i} byte-exact`);
    }
    const whole = await run('cat', [path]);
    assert.notEqual(whole.code, 0, 'a whole read still fails');
    assert.equal((await stateOf(path))?.state, 'partial');
    const bits = await residentOf(path);
    assert.equal(residentBit(bits, bad), false, 'the corrupt chunk is not marked resident');
    assert.equal(residentBit(bits, 3), true, 'a verified chunk is');

    scribble(h, 'k/mid.bin', bad * CHUNK + 1000, good); // the tier is repaired
    const again = await run('cat', [path]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.stdout.equals(data), 'the whole file reads back byte-exact');
  });

  test('a corrupt chunk under a whole-file recall (cp, a sparse-aware copier): the copy fails, no wrong bytes', async () => {
    const data = pattern(3 * CHUNK + 7, 32);
    const path = await makeReleased(h, 'cp.bin', data);
    scribble(h, 'k/cp.bin', 2 * CHUNK + 3, Buffer.from([data[2 * CHUNK + 3]! ^ 0xff]));
    const dest = join(h.fs.scratch, 'cp.out');
    const r = await run('cp', [path, dest]);
    assert.notEqual(r.code, 0, 'cp fails');
    assert.match(r.stderr, /Input\/output error/);
    const st = await stateOf(path);
    assert.notEqual(st?.state, 'archived', 'the file is not complete');
  });

  test('two-level sums: a corrupt block of leaves is EIO for its chunks only, nothing written; a corrupt level 1 is EIO for all; repaired: read again', async () => {
    const n = 140; // three blocks of leaves (64, 64, 12)
    const data = pattern(n * CHUNK - 7, 37);
    const path = await makeReleased(h, 'tree-bad.bin', data);
    assert.equal((await stateOf(path))?.copy?.tree, true);
    const key = sumsKey('k/tree-bad.bin');
    const l1 = 3 * 32;
    const good = await h.tier.get(key);
    // One byte of chunk 70's leaf (block 1).
    scribble(h, key, l1 + 70 * 32 + 3, Buffer.from([good[l1 + 70 * 32 + 3]! ^ 0xff]));
    const ok = await readRange(path, 5 * CHUNK + 11, 1000); // block 0
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(ok.stdout.equals(data.subarray(5 * CHUNK + 11, 5 * CHUNK + 1011)));
    const s0 = h.sumsFetched();
    const bad = await readRange(path, 100 * CHUNK + 5, 1000); // chunk 100, block 1: the block fails as a whole
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Input\/output error/);
    assert.equal(bad.stdout.length, 0, 'no byte of a chunk whose leaf block fails');
    assert.ok(h.sumsFetched() - s0 >= 64 * 32, 'the block was fetched (and counted)');
    const map = await residentOf(path);
    assert.equal(residentBit(map, 5, n), true, 'a chunk read before is recorded');
    assert.equal(residentBit(map, 100, n), false, 'nothing recorded for it');
    const ok2 = await readRange(path, 130 * CHUNK, 1000); // block 2 still fine
    assert.equal(ok2.code, 0, ok2.stderr);
    assert.ok(ok2.stdout.equals(data.subarray(130 * CHUNK, 130 * CHUNK + 1000)));
    // Repaired: the block is fetched again (a failed one is never cached) and the read works.
    scribble(h, key, 0, good);
    const fixed = await readRange(path, 100 * CHUNK + 5, 1000);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.ok(fixed.stdout.equals(data.subarray(100 * CHUNK + 5, 100 * CHUNK + 1005)));

    // Level 1 itself: every read of a fresh file fails, nothing is written.
    const path2 = await makeReleased(h, 'tree-l1.bin', data);
    const key2 = sumsKey('k/tree-l1.bin');
    scribble(h, key2, 33, Buffer.from([(await h.tier.get(key2))[33]! ^ 0x01]));
    for (const off of [0, 70 * CHUNK, 139 * CHUNK]) {
      const r = await readRange(path2, off, 100);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.equal(r.stdout.length, 0);
    }
    assert.equal((await stateOf(path2))?.state, 'released', 'nothing recalled');
  });

  test('a corrupt or missing sums object: EIO for every read, then recovers when it is back', async () => {
    const data = pattern(2 * CHUNK + 5, 33);
    const corrupt = await makeReleased(h, 'sums-bad.bin', data);
    scribble(h, sumsKey('k/sums-bad.bin'), 40, Buffer.from([0xff, 0x00, 0xff]));
    const missing = await makeReleased(h, 'sums-gone.bin', data);
    unlinkSync(join(h.fs.scratch, 'tier', sumsKey('k/sums-gone.bin')));
    for (const path of [corrupt, missing]) {
      for (const read of [() => run('cat', [path]), () => readRange(path, CHUNK, 100)]) {
        const r = await read();
        assert.notEqual(r.code, 0, path);
        assert.match(r.stderr, /Input\/output error/, path);
        assert.equal(r.stdout.length, 0, `${path}: no bytes`);
      }
      assert.equal((await stateOf(path))?.state, 'released', `${path}: nothing recalled`);
    }
  });

  test('a record of the older format (no sums): still recalls byte-exact, whole-object check kept', async () => {
    const data = pattern(3 * CHUNK + 11, 34);
    const path = await makeReleased(h, 'old.bin', data, 0o644, undefined, { sums: false });
    assert.equal((await stateOf(path))?.copy?.sumsSha, undefined);
    const r = await run('cat', [path]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(data));
    assert.equal((await stateOf(path))?.state, 'archived');

    const small = pattern(CHUNK - 9, 35); // one chunk: the file's SHA-256 still checks it
    const one = await makeReleased(h, 'old-one.bin', small, 0o644, undefined, { sums: false });
    scribble(h, 'k/old-one.bin', 10, Buffer.from([small[10]! ^ 1]));
    const bad = await run('cat', [one]);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.stdout.length, 0);
  });
});
