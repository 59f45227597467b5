import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyChunkFor, decodeRecord, encodeRecord, MAX_COPY_CHUNKS, storedSize, sumsInRecord, treeObjLen, type StateRecord } from '../../src/record/state-record.js';

const full: StateRecord = {
  v: 1,
  state: 'released',
  pinned: true,
  gen: 3,
  copy: {
    tier: 'cold-archive',
    key: 'ab/abcdef01-2345-6789-abcd-ef0123456789',
    size: 123456789012,
    mtimeNs: '1764300000123456789',
    sha256: 'a'.repeat(64),
    archivedAt: 1764300000123,
    chunk: 4194304,
  },
};

test('records round-trip, with and without a copy', () => {
  assert.deepEqual(decodeRecord(encodeRecord(full)), full);
  const bare: StateRecord = { v: 1, state: 'resident', pinned: true, gen: 0 };
  assert.deepEqual(decodeRecord(encodeRecord(bare)), bare);
});

test('a full record stays small enough for XFS to keep it in the inode (< 250 bytes)', () => {
  assert.ok(encodeRecord(full).length < 250, String(encodeRecord(full).length));
});

test('the named-field JSON form is still read', () => {
  assert.deepEqual(decodeRecord(Buffer.from(JSON.stringify(full))), full);
});

test('malformed records are not trusted', () => {
  for (const bad of ['', 'x', '[]', '[2,"released",0,1,0]', '[1,"gone",0,1,0]', '[1,"released",0,1,["t"]]', 'null', '{"v":1}']) {
    assert.equal(decodeRecord(Buffer.from(bad)), null, bad);
  }
});

test('chunk sums: the sums SHA-256 round-trips in base64url; a full record with it stays < 250 bytes', () => {
  const withSums: StateRecord = { ...full, copy: { ...full.copy!, sumsSha: 'f0'.repeat(31) + '0e' } };
  const enc = encodeRecord(withSums);
  assert.deepEqual(decodeRecord(enc), withSums);
  assert.ok(enc.length < 250, String(enc.length));
  assert.deepEqual(decodeRecord(Buffer.from(JSON.stringify(withSums))), withSums, 'named-field form');
});

test('chunk sums: a record without them (older format) still decodes, without sumsSha', () => {
  const old = Buffer.from('[1,"released",0,2,["t","ab/k",10,"5","' + 'a'.repeat(64) + '",1,4194304]]');
  const r = decodeRecord(old);
  assert.equal(r?.copy?.key, 'ab/k');
  assert.equal('sumsSha' in r!.copy!, false);
  for (const bad of ['1', '"short"', '"' + '!'.repeat(43) + '"']) {
    assert.equal(decodeRecord(Buffer.from('[1,"released",0,2,["t","ab/k",10,"5","x",1,4194304,' + bad + ']]')), null, bad);
  }
});

test('sparse copies: [stored, sumsLen] as a 9th element; dense copies keep exactly the older form', () => {
  const dense: StateRecord = { ...full, copy: { ...full.copy!, sumsSha: 'f0'.repeat(31) + '0e' } };
  const d = JSON.parse(encodeRecord(dense).toString()) as unknown[][];
  assert.equal(d[4]!.length, 8, 'no map element for a dense copy');
  const sparse: StateRecord = { ...dense, copy: { ...dense.copy!, size: 16 * 2 ** 40, sparse: { stored: 3 << 20, sumsLen: 24 + 16 * 3 + 32 * 3 } } };
  const enc = encodeRecord(sparse);
  assert.deepEqual(decodeRecord(enc), sparse);
  // Fits a 512-byte ext4 inode's in-inode xattr space (and XFS's local attr fork) with room.
  assert.ok(enc.length < 280, String(enc.length));
  assert.equal(storedSize(sparse.copy!), 3 << 20);
  assert.equal(storedSize(dense.copy!), dense.copy!.size);
  const pre = '[1,"released",0,2,["t","ab/k",100,"5","x",1,4194304,"' + 'A'.repeat(43) + '",';
  for (const bad of ['1', '[1]', '[101,10]', '[-1,10]', '[10,0]', '[10.5,10]', '["10",10]']) {
    assert.equal(decodeRecord(Buffer.from(pre + bad + ']]')), null, bad);
  }
  assert.equal(decodeRecord(Buffer.from('[1,"released",0,2,["t","ab/k",100,"5","x",1,4194304,0,[10,10]]]')), null, 'map without sums');
});

test('copyChunkFor: the tier chunk, doubled until the resident map has at most MAX_COPY_CHUNKS bits; sparse copies keep the earlier rule', () => {
  const K = 1024;
  assert.equal(MAX_COPY_CHUNKS, 65536);
  assert.equal(copyChunkFor(16 * K, 0), 16 * K);
  assert.equal(copyChunkFor(16 * K, 1 << 30), 16 * K, '1 GiB: 65536 chunks of 16 KiB');
  assert.equal(copyChunkFor(16 * K, (1 << 30) + 1), 32 * K);
  assert.equal(copyChunkFor(16 * K, 100 * (1 << 30)), 2 * K * K);
  assert.equal(copyChunkFor(4 * K * K, 1 << 30), 4 * K * K, 'a bigger tier chunk is kept');
  for (const size of [1, 12345, 3 << 30, 2 ** 40 + 7]) assert.ok(Math.ceil(size / copyChunkFor(16 * K, size)) <= MAX_COPY_CHUNKS);
  // Sparse: at least 64 KiB, at most 16384 chunks (flat sums with the map, fetched whole).
  assert.equal(copyChunkFor(16 * K, 1 << 20, true), 64 * K);
  assert.equal(copyChunkFor(16 * K, (1 << 30) + 1, true), 128 * K);
  assert.equal(copyChunkFor(1 << 20, 1 << 20, true), 1 << 20);
});

test('two-level sums: the chunk written negated (a version from before refuses it: EIO, never a flat read); only with sums, dense, not imported', () => {
  const size = 512 * 1024 * 1024;
  const tree: StateRecord = { ...full, copy: { ...full.copy!, size, chunk: 16384, sumsSha: 'f0'.repeat(31) + '0e', tree: true } };
  const enc = encodeRecord(tree);
  assert.equal((JSON.parse(enc.toString()) as unknown[][])[4]![6], -16384);
  assert.deepEqual(decodeRecord(enc), tree);
  assert.ok(enc.length < 250, String(enc.length));
  assert.deepEqual(decodeRecord(Buffer.from(JSON.stringify(tree))), tree, 'named-field form');
  assert.equal(decodeRecord(Buffer.from(`[1,"released",0,2,["t","ab/k",${size},"5","x",1,-16384]]`)), null, 'tree without sums');
  assert.equal(decodeRecord(Buffer.from(`[1,"released",0,2,["t","ab/k",${size},"5","x",1,-16384,"${'A'.repeat(43)}",[10,50]]]`)), null, 'tree and sparse');
  assert.equal(decodeRecord(Buffer.from(JSON.stringify({ ...tree, copy: { ...tree.copy, tree: 1 } }))), null, 'named form, tree not true');
  assert.equal(treeObjLen(32768), 512 * 32 + 32768 * 32);
});

test('sumsInRecord: small dense copies (one chunk, or up to 256 KiB) have no sums object', () => {
  assert.equal(sumsInRecord({ size: 256 * 1024, chunk: 16384 }), true);
  assert.equal(sumsInRecord({ size: 256 * 1024 + 1, chunk: 16384 }), false);
  assert.equal(sumsInRecord({ size: 3 << 20, chunk: 4 << 20 }), true, 'one chunk');
  assert.equal(sumsInRecord({ size: 100, chunk: 16384, sparse: { stored: 10, sumsLen: 50 } }), false);
  assert.equal(sumsInRecord({ size: 100, chunk: 16384, foreign: 'etag:x' }), false);
});
