// Table tests for the sparse copy's data map (src/chunks/extent-map.ts): pieces of a
// logical range, the summed chunks, serialisation, and rejection of untrusted maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  dataChunks,
  decodeSums,
  encodeMap,
  encodeSums,
  isDense,
  makeMap,
  MapError,
  MAX_EXTENTS,
  objectSpan,
  piecesOf,
  sumIndex,
  sumOf,
} from '../../src/chunks/extent-map.js';
import { LogicalSums } from '../../src/engine/upload.js';

const KiB = 1024;
// 100 KiB file: data [8K,16K) and [40K,60K), holes elsewhere.
const m = makeMap(100 * KiB, [
  { off: 8 * KiB, len: 8 * KiB },
  { off: 40 * KiB, len: 20 * KiB },
]);

test('makeMap: object offsets are the packed positions; adjacent extents coalesce', () => {
  assert.deepEqual(m.obj, [0, 8 * KiB]);
  assert.equal(m.stored, 28 * KiB);
  assert.equal(isDense(m), false);
  const c = makeMap(10, [
    { off: 0, len: 4 },
    { off: 4, len: 6 },
  ]);
  assert.deepEqual(c.extents, [{ off: 0, len: 10 }]);
  assert.equal(isDense(c), true);
  assert.equal(isDense(makeMap(0, [])), true);
  assert.equal(isDense(makeMap(5, [])), false);
});

test('piecesOf: logical range -> data pieces (object offsets) and holes', () => {
  const cases: [number, number, ReturnType<typeof piecesOf>][] = [
    [0, 8 * KiB, [{ kind: 'hole', at: 0, len: 8 * KiB }]],
    [0, 10 * KiB, [{ kind: 'hole', at: 0, len: 8 * KiB }, { kind: 'data', at: 8 * KiB, len: 2 * KiB, obj: 0 }]],
    [12 * KiB, 44 * KiB, [{ kind: 'data', at: 12 * KiB, len: 4 * KiB, obj: 4 * KiB }, { kind: 'hole', at: 16 * KiB, len: 24 * KiB }, { kind: 'data', at: 40 * KiB, len: 4 * KiB, obj: 8 * KiB }]],
    [50 * KiB, 55 * KiB, [{ kind: 'data', at: 50 * KiB, len: 5 * KiB, obj: 18 * KiB }]],
    [59 * KiB, 200 * KiB, [{ kind: 'data', at: 59 * KiB, len: KiB, obj: 27 * KiB }, { kind: 'hole', at: 60 * KiB, len: 40 * KiB }]],
    [100 * KiB, 120 * KiB, []],
    [16 * KiB, 40 * KiB, [{ kind: 'hole', at: 16 * KiB, len: 24 * KiB }]],
  ];
  for (const [s, e, want] of cases) assert.deepEqual(piecesOf(m, s, e), want, `[${s}, ${e})`);
  // Every byte of the file is covered exactly once, in order.
  const all = piecesOf(m, 0, m.size);
  assert.equal(all.reduce((n, p) => n + p.len, 0), m.size);
});

test('objectSpan: the one object range under a logical range; null for holes only', () => {
  assert.deepEqual(objectSpan(piecesOf(m, 12 * KiB, 44 * KiB)), { offset: 4 * KiB, length: 8 * KiB });
  assert.equal(objectSpan(piecesOf(m, 16 * KiB, 40 * KiB)), null);
  assert.deepEqual(objectSpan(piecesOf(m, 0, m.size)), { offset: 0, length: m.stored });
});

test('dataChunks / sumIndex: the chunks that touch data, in order', () => {
  assert.deepEqual(dataChunks(m, 16 * KiB), [0, 2, 3]); // [8,16) in 0; [40,60) in 2,3
  assert.deepEqual(dataChunks(m, 8 * KiB), [1, 5, 6, 7]);
  assert.deepEqual(dataChunks(makeMap(5, []), 4), []);
  const c = [1, 5, 6, 7];
  assert.deepEqual([0, 1, 5, 7, 8].map((i) => sumIndex(c, i)), [-1, 0, 1, 3, -1]);
});

test('LogicalSums hashes holes as zeros and gives sums only for chunks with data', () => {
  const chunk = 16 * KiB;
  const file = Buffer.alloc(m.size);
  for (const e of m.extents) file.fill(0xab, e.off, e.off + e.len);
  const ls = new LogicalSums(chunk, m.size);
  for (const e of m.extents) {
    // Fed in uneven pieces, as the pread stream does.
    ls.update(e.off, file.subarray(e.off, e.off + 3000));
    ls.update(e.off + 3000, file.subarray(e.off + 3000, e.off + e.len));
  }
  const sums = ls.digest();
  const want = dataChunks(m, chunk).map((i) => createHash('sha256').update(file.subarray(i * chunk, Math.min(m.size, (i + 1) * chunk))).digest());
  assert.deepEqual(sums, Buffer.concat(want));
  const ix = decodeSums(encodeSums(m, sums), { size: m.size, stored: m.stored, chunk });
  assert.deepEqual(sumOf(ix, 2), want[1]);
  assert.equal(sumOf(ix, 1), null);
  assert.deepEqual(ix.map?.extents, m.extents);
});

test('decodeSums rejects every inconsistent map (a map from the tier is untrusted)', () => {
  const chunk = 16 * KiB;
  const good = encodeSums(m, Buffer.alloc(3 * 32));
  const want = { size: m.size, stored: m.stored, chunk };
  assert.doesNotThrow(() => decodeSums(good, want));
  const raw = (size: number, stored: number, ext: [number, number][], sums: number) => {
    const b = Buffer.alloc(24 + 16 * ext.length + sums);
    b.write('TMP1', 0);
    b.writeBigUInt64LE(BigInt(size), 4);
    b.writeBigUInt64LE(BigInt(stored), 12);
    b.writeUInt32LE(ext.length, 20);
    ext.forEach(([o, l], i) => {
      b.writeBigUInt64LE(BigInt(o), 24 + 16 * i);
      b.writeBigUInt64LE(BigInt(l), 32 + 16 * i);
    });
    return b;
  };
  const bad: [string, Buffer, RegExp][] = [
    ['bad magic', Buffer.concat([Buffer.from('XXXX'), good.subarray(4)]), /bad header/],
    ['short', good.subarray(0, 10), /bad header/],
    ['other size', raw(m.size + 1, m.stored, [[8 * KiB, 8 * KiB], [40 * KiB, 20 * KiB]], 96), /file has/],
    ['other stored', raw(m.size, m.stored - 1, [[8 * KiB, 8 * KiB], [40 * KiB, 20 * KiB]], 96), /record says/],
    ['overlap', raw(m.size, m.stored, [[8 * KiB, 20 * KiB], [20 * KiB, 8 * KiB]], 96), /not after/],
    ['adjacent', raw(m.size, m.stored, [[8 * KiB, 8 * KiB], [16 * KiB, 20 * KiB]], 64), /not after/],
    ['unordered', raw(m.size, m.stored, [[40 * KiB, 20 * KiB], [8 * KiB, 8 * KiB]], 96), /not after/],
    ['past EOF', raw(m.size, m.stored, [[8 * KiB, 8 * KiB], [90 * KiB, 20 * KiB]], 96), /outside/],
    ['zero length', raw(m.size, m.stored, [[8 * KiB, 8 * KiB], [40 * KiB, 0]], 96), /outside/],
    ['total differs', raw(m.size, m.stored, [[8 * KiB, 8 * KiB], [40 * KiB, 16 * KiB]], 96), /add up/],
    ['count beyond the bytes', (() => { const b = Buffer.from(good); b.writeUInt32LE(1000, 20); return b; })(), /claims 1000 extents/],
    ['too many', (() => { const b = Buffer.from(good); b.writeUInt32LE(MAX_EXTENTS + 1, 20); return b; })(), /claims/],
    ['sums short', good.subarray(0, good.length - 1), /bytes of sums/],
    ['sums long', Buffer.concat([good, Buffer.alloc(32)]), /bytes of sums/],
    ['huge value', (() => { const b = Buffer.from(good); b.writeBigUInt64LE(1n << 60n, 24); return b; })(), /too large/],
  ];
  for (const [name, buf, re] of bad) assert.throws(() => decodeSums(buf, want), (e: Error) => e instanceof MapError && re.test(e.message), name);
});

test('encodeMap is deterministic and small: 24 bytes + 16 per extent', () => {
  assert.equal(encodeMap(m).length, 24 + 32);
  assert.deepEqual(encodeMap(m), encodeMap(makeMap(m.size, m.extents)));
  assert.throws(() => makeMap(10, [{ off: 5, len: 10 }]), MapError);
});
