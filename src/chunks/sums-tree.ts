// The two-level sums object of a dense copy (issue 11: small verified units without
// fetching every sum of a big file). Pure.
//
// Layout of `${key}.sums` for a record with `copy.tree`:
//   level 1: 32-byte SHA-256 of each block of TREE_BLOCK leaf sums (the last block may be
//            shorter), in block order
//   leaves:  32-byte SHA-256 of each `copy.chunk`-sized piece of the file, in chunk order
// The record's `sumsSha` is the SHA-256 of level 1 alone. So a reader GETs level 1 once
// per inode (checked against the record), then only the blocks of leaves its chunks need
// (ranged GETs, each checked against its level-1 sum): a 512 MiB file at 16 KiB chunks
// has 1 MiB of leaves but 16 KiB of level 1, and a random read costs one 2 KiB block.
//
// Invariants:
// - every length here follows from (chunks) alone, which the record fixes (size, chunk):
//   nothing in the object says how long it is, so nothing in it can lie about that;
// - a block is believed only after its SHA-256 equals its level-1 sum, and level 1 only
//   after its SHA-256 equals the record's sumsSha.
import { createHash } from 'node:crypto';
import { TREE_BLOCK, treeObjLen } from '../record/state-record.js';

export { TREE_BLOCK };
export const LEAF = 32;

export interface TreeLayout {
  chunks: number;
  blocks: number;
  /** Bytes of level 1 (where the leaves start). */
  l1Len: number;
  /** Bytes of the whole object. */
  objLen: number;
}

export function treeLayout(chunks: number): TreeLayout {
  const blocks = Math.ceil(chunks / TREE_BLOCK);
  return { chunks, blocks, l1Len: blocks * LEAF, objLen: treeObjLen(chunks) };
}

/** Block j's byte range [start, end) in the object. */
export function blockSpan(t: TreeLayout, j: number): { start: number; end: number } {
  const first = j * TREE_BLOCK;
  const last = Math.min(t.chunks, first + TREE_BLOCK);
  return { start: t.l1Len + first * LEAF, end: t.l1Len + last * LEAF };
}

/** The blocks holding the leaves of chunks [first, last): [firstBlock, endBlock). */
export function blocksOf(first: number, last: number): { start: number; end: number } {
  return { start: Math.floor(first / TREE_BLOCK), end: Math.ceil(last / TREE_BLOCK) };
}

const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/** The object for `leaves` (32 bytes per chunk) and the record's sumsSha (SHA-256 of level 1). */
export function encodeTree(leaves: Buffer): { obj: Buffer; sumsSha: string } {
  if (leaves.length % LEAF !== 0) throw new RangeError(`leaf sums of ${leaves.length} bytes`);
  const t = treeLayout(leaves.length / LEAF);
  const l1 = Buffer.alloc(t.l1Len);
  for (let j = 0; j < t.blocks; j++) {
    const s = blockSpan(t, j);
    sha(leaves.subarray(s.start - t.l1Len, s.end - t.l1Len)).copy(l1, j * LEAF);
  }
  return { obj: Buffer.concat([l1, leaves]), sumsSha: sha(l1).toString('hex') };
}

/** Whether `l1` is the level 1 the record names. */
export function l1Matches(l1: Buffer, t: TreeLayout, sumsSha: string): boolean {
  return l1.length === t.l1Len && sha(l1).toString('hex') === sumsSha;
}

/** Whether `bytes` are block j's leaves by the (verified) level 1. */
export function blockMatches(l1: Buffer, t: TreeLayout, j: number, bytes: Buffer): boolean {
  const s = blockSpan(t, j);
  return bytes.length === s.end - s.start && sha(bytes).equals(l1.subarray(j * LEAF, (j + 1) * LEAF));
}
