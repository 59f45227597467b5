// The two-level sums object (chunks/sums-tree.ts) and its reader (chunks/sums-fetch.ts):
// level 1 is checked against the record, each block of leaves against level 1; a reader
// GETs only the blocks it needs and counts every byte it fetched. An in-memory tier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { blockSpan, blocksOf, encodeTree, treeLayout, TREE_BLOCK, LEAF } from '../../src/chunks/sums-tree.js';
import { fetchChunkSums, fetchTreeIndex, flatSums, loadLeaves } from '../../src/chunks/sums-fetch.js';
import { sumOf } from '../../src/chunks/extent-map.js';
import { TierError, type Tier } from '../../src/tiers/tier.js';
import type { StateRecord } from '../../src/record/state-record.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest();

/** A read-only tier over a map of objects, recording every GET (offset, length). */
function memTier(objs: Map<string, Buffer>) {
  const gets: { key: string; offset: number; length: number }[] = [];
  const tier = {
    name: 'mem',
    async get(key: string, r?: { offset: number; length: number }) {
      const o = objs.get(key);
      if (!o) throw new TierError('NotFound', 'get', 'mem', key, 'no such object');
      const offset = r?.offset ?? 0;
      const length = r?.length ?? o.length - offset;
      gets.push({ key, offset, length });
      return Buffer.from(o.subarray(offset, offset + length));
    },
  } as unknown as Tier;
  return { tier, gets };
}

function copyOf(data: Buffer, chunk: number) {
  const leaves = flatSums(data, chunk);
  const t = encodeTree(leaves);
  const copy: NonNullable<StateRecord['copy']> = { tier: 'mem', key: 'k', size: data.length, mtimeNs: '1', sha256: sha(data).toString('hex'), archivedAt: 0, chunk, sumsSha: t.sumsSha, tree: true };
  return { copy, leaves, obj: t.obj };
}

test('layout: level 1 is one sum per 64 leaves, then the leaves; block spans and chunk -> blocks', () => {
  const t = treeLayout(200);
  assert.equal(t.blocks, 4);
  assert.equal(t.l1Len, 4 * LEAF);
  assert.equal(t.objLen, 4 * LEAF + 200 * LEAF);
  assert.deepEqual(blockSpan(t, 0), { start: 128, end: 128 + 64 * 32 });
  assert.deepEqual(blockSpan(t, 3), { start: 128 + 192 * 32, end: 128 + 200 * 32 }, 'the last block is short');
  assert.deepEqual(blocksOf(63, 65), { start: 0, end: 2 });
  assert.deepEqual(blocksOf(64, 128), { start: 1, end: 2 });
  const leaves = Buffer.alloc(200 * LEAF, 7);
  const { obj, sumsSha } = encodeTree(leaves);
  assert.equal(obj.length, t.objLen);
  assert.ok(obj.subarray(t.l1Len).equals(leaves));
  assert.equal(sha(obj.subarray(0, t.l1Len)).toString('hex'), sumsSha);
  assert.ok(obj.subarray(3 * LEAF, 4 * LEAF).equals(sha(leaves.subarray(192 * LEAF))));
  assert.equal(TREE_BLOCK, 64);
});

test('a reader GETs level 1 (with the blocks near it), then only the blocks it needs; every byte counted', async () => {
  const chunk = 1024;
  const data = Buffer.alloc(1000 * chunk + 5);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, Math.min(i, data.length - 4));
  const { copy, leaves, obj } = copyOf(data, chunk);
  const { tier, gets } = memTier(new Map([['k.sums', obj]]));
  let bytes = 0;
  const count = (n: number) => (bytes += n);
  const t = treeLayout(1001);
  // Chunks far from the start: level 1 alone first.
  const ix = await fetchTreeIndex(tier, copy, 1000, { first: 900, last: 901 }, count);
  assert.deepEqual(gets, [{ key: 'k.sums', offset: 0, length: t.l1Len }]);
  assert.throws(() => sumOf(ix, 900), /not loaded/);
  await loadLeaves(tier, copy, ix, 900, 901, 1000, count);
  const b = blockSpan(t, 14);
  assert.deepEqual(gets[1], { key: 'k.sums', offset: b.start, length: b.end - b.start });
  assert.ok(sumOf(ix, 900)!.equals(leaves.subarray(900 * LEAF, 901 * LEAF)));
  // Loaded blocks are not fetched again; a run over blocks 13..15 fetches 13 and 15 in two GETs.
  await loadLeaves(tier, copy, ix, 850, 1001, 1000, count);
  assert.equal(gets.length, 4);
  assert.equal(bytes, gets.reduce((n, g) => n + g.length, 0), 'every byte a GET returned is counted');
  // Near the start: level 1 and the first blocks in one GET.
  const near = memTier(new Map([['k.sums', obj]]));
  const ix2 = await fetchTreeIndex(near.tier, copy, 1000, { first: 0, last: 70 }, count);
  assert.deepEqual(near.gets, [{ key: 'k.sums', offset: 0, length: blockSpan(t, 1).end }]);
  assert.ok(sumOf(ix2, 69)!.equals(leaves.subarray(69 * LEAF, 70 * LEAF)));
  // The engine's whole fetch: every leaf.
  const all = await fetchChunkSums(memTier(new Map([['k.sums', obj]])).tier, copy, 1000);
  for (const i of [0, 500, 1000]) assert.ok(sumOf(all, i)!.equals(leaves.subarray(i * LEAF, (i + 1) * LEAF)));
});

test('a corrupt level 1 or a corrupt block of leaves is Corrupt; a failed block is not kept and is tried again', async () => {
  const chunk = 512;
  const data = Buffer.alloc(300 * chunk, 3);
  const { copy, obj } = copyOf(data, chunk);
  const t = treeLayout(300);
  const badL1 = Buffer.from(obj);
  badL1[5]! ^= 1;
  await assert.rejects(fetchTreeIndex(memTier(new Map([['k.sums', badL1]])).tier, copy, 1000, null), (e: TierError) => e.code === 'Corrupt' && /level-1/.test(e.message));
  const short = obj.subarray(0, t.l1Len - 1);
  await assert.rejects(fetchTreeIndex(memTier(new Map([['k.sums', short]])).tier, copy, 1000, null), (e: TierError) => e.code === 'Corrupt');
  const objs = new Map([['k.sums', Buffer.from(obj)]]);
  const badLeaf = objs.get('k.sums')!;
  badLeaf[blockSpan(t, 3).start + 40]! ^= 1;
  const { tier } = memTier(objs);
  const ix = await fetchTreeIndex(tier, copy, 1000, null);
  await assert.rejects(loadLeaves(tier, copy, ix, 200, 201, 1000), (e: TierError) => e.code === 'Corrupt' && /block 3/.test(e.message));
  assert.equal(ix.tree!.blocks.has(3), false);
  assert.equal(ix.tree!.loading.size, 0);
  // A leaf lying about a chunk fails that chunk only after its block checks out: here the
  // block does not, so nothing of it is believed. Repaired, the block loads.
  objs.set('k.sums', Buffer.from(obj));
  await loadLeaves(tier, copy, ix, 200, 201, 1000);
  assert.equal(ix.tree!.blocks.has(3), true);
  // A leaf lying in a block that was re-hashed into level 1 cannot pass the record's sumsSha.
  const forged = Buffer.from(obj);
  forged[blockSpan(t, 0).start]! ^= 1;
  forged.set(sha(forged.subarray(blockSpan(t, 0).start, blockSpan(t, 0).end)), 0);
  await assert.rejects(fetchTreeIndex(memTier(new Map([['k.sums', forged]])).tier, copy, 1000, null), (e: TierError) => e.code === 'Corrupt');
});

test('a small dense copy has its sums in the record: summed from the object, checked against sha256', async () => {
  const chunk = 16384;
  const data = Buffer.alloc(100_000, 9);
  data[70_000] = 1;
  const flat = flatSums(data, chunk);
  const copy: NonNullable<StateRecord['copy']> = { tier: 'mem', key: 'k', size: data.length, mtimeNs: '1', sha256: sha(data).toString('hex'), archivedAt: 0, chunk, sumsSha: sha(flat).toString('hex') };
  let bytes = 0;
  const m = memTier(new Map([['k', data]]));
  const ix = await fetchChunkSums(m.tier, copy, 1000, (n) => (bytes += n));
  assert.ok(ix.sums.equals(flat));
  assert.equal(bytes, data.length);
  const bad = Buffer.from(data);
  bad[3]! ^= 1;
  await assert.rejects(fetchChunkSums(memTier(new Map([['k', bad]])).tier, copy, 1000), (e: TierError) => e.code === 'Corrupt');
});
