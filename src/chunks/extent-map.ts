// The data map of a sparse file's copy (pure). A copy of a file with holes stores only
// its data extents, packed one after another in the object; the map says where each
// extent lives in the file. Chunk sums stay over the *logical* file (holes read as
// zeros), but only chunks that touch data have a sum: an all-hole chunk is zeros by the
// map's word and has nothing stored to verify.
//
// Layout of a mapped copy's `${key}.sums` object (its SHA-256 is in the record, so the
// map is as tamper-evident as the sums):
//   "TMP1" | size u64 | stored u64 | count u32 | count × (offset u64, length u64)
//   | 32-byte SHA-256 of every chunk that touches data, in chunk order
// A dense copy (no hole) has no map: its sums object is the plain sums, as before.
//
// Invariants (checked by decodeSums: a map from the tier is untrusted data):
// - extents sorted, each length > 0, strictly apart (never adjacent: coalesced), inside
//   [0, size); their lengths add up to `stored`, the object's size;
// - at most MAX_EXTENTS extents (a map stays small enough to hold in memory).

import { TREE_BLOCK, type TreeLayout } from './sums-tree.js';

export interface Extent {
  /** Logical offset in the file. */
  off: number;
  len: number;
}

export interface ExtentMap {
  size: number;
  /** Bytes stored in the object: the sum of the extents' lengths. */
  stored: number;
  extents: readonly Extent[];
  /** Object offset of each extent (prefix sums of the lengths). */
  obj: readonly number[];
}

/** A piece of a logical range: data at object offset `obj`, or a hole (zeros, nothing stored). */
export type Piece = { kind: 'data'; at: number; len: number; obj: number } | { kind: 'hole'; at: number; len: number };

/** 1 Mi extents: a 16 MiB map. A file more fragmented than that is not archived. */
export const MAX_EXTENTS = 1 << 20;
const MAGIC = Buffer.from('TMP1');
const HEAD = 4 + 8 + 8 + 4;
export const SUM_BYTES = 32;

export class MapError extends Error {}

/** Builds a map from extents (sorted, coalescing adjacent ones); throws MapError on overlap or bounds. */
export function makeMap(size: number, list: readonly Extent[]): ExtentMap {
  const extents: Extent[] = [];
  for (const e of list) {
    if (!Number.isSafeInteger(e.off) || !Number.isSafeInteger(e.len) || e.off < 0 || e.len <= 0 || e.off + e.len > size) {
      throw new MapError(`extent ${e.off}+${e.len} is outside the file (size ${size})`);
    }
    const last = extents[extents.length - 1];
    if (last && e.off < last.off + last.len) throw new MapError(`extent ${e.off}+${e.len} overlaps or precedes ${last.off}+${last.len}`);
    if (last && e.off === last.off + last.len) last.len += e.len;
    else extents.push({ off: e.off, len: e.len });
  }
  if (extents.length > MAX_EXTENTS) throw new MapError(`${extents.length} data extents (more than ${MAX_EXTENTS})`);
  const obj: number[] = [];
  let stored = 0;
  for (const e of extents) {
    obj.push(stored);
    stored += e.len;
  }
  return { size, stored, extents, obj };
}

/** True when the file has no hole: one extent over all of it (or an empty file). */
export function isDense(m: ExtentMap): boolean {
  return m.stored === m.size;
}

/** Index of the first extent ending after `pos` (extents.length if none). */
function firstEndingAfter(m: ExtentMap, pos: number): number {
  let lo = 0;
  let hi = m.extents.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = m.extents[mid]!;
    if (e.off + e.len <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The pieces of logical range [start, end) (clamped to the size), in order. */
export function piecesOf(m: ExtentMap, start: number, end: number): Piece[] {
  end = Math.min(end, m.size);
  const out: Piece[] = [];
  let pos = Math.max(0, start);
  for (let i = firstEndingAfter(m, pos); pos < end; i++) {
    const e = m.extents[i];
    if (!e || e.off >= end) {
      out.push({ kind: 'hole', at: pos, len: end - pos });
      break;
    }
    if (e.off > pos) out.push({ kind: 'hole', at: pos, len: e.off - pos });
    const ds = Math.max(pos, e.off);
    const de = Math.min(end, e.off + e.len);
    out.push({ kind: 'data', at: ds, len: de - ds, obj: m.obj[i]! + ds - e.off });
    pos = de;
  }
  return out;
}

/** The one object range holding every data piece (they are packed in order): null when all holes. */
export function objectSpan(pieces: readonly Piece[]): { offset: number; length: number } | null {
  const data = pieces.filter((p): p is Extract<Piece, { kind: 'data' }> => p.kind === 'data');
  const first = data[0];
  const last = data[data.length - 1];
  return first && last ? { offset: first.obj, length: last.obj + last.len - first.obj } : null;
}

/** Indexes of the chunks that touch data, ascending: the chunks that have a sum. */
export function dataChunks(m: ExtentMap, chunk: number): number[] {
  const out: number[] = [];
  for (const e of m.extents) {
    const last = Math.floor((e.off + e.len - 1) / chunk);
    for (let c = Math.max(Math.floor(e.off / chunk), (out[out.length - 1] ?? -1) + 1); c <= last; c++) out.push(c);
  }
  return out;
}

/** Position of chunk i in `chunks` (ascending), or -1: the chunk is all hole. */
export function sumIndex(chunks: readonly number[], i: number): number {
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (chunks[mid]! < i) lo = mid + 1;
    else hi = mid;
  }
  return chunks[lo] === i ? lo : -1;
}

/** The map part of a mapped sums object (also hashed into the record's content digest). */
export function encodeMap(m: ExtentMap): Buffer {
  const b = Buffer.alloc(HEAD + 16 * m.extents.length);
  MAGIC.copy(b, 0);
  b.writeBigUInt64LE(BigInt(m.size), 4);
  b.writeBigUInt64LE(BigInt(m.stored), 12);
  b.writeUInt32LE(m.extents.length, 20);
  m.extents.forEach((e, i) => {
    b.writeBigUInt64LE(BigInt(e.off), HEAD + 16 * i);
    b.writeBigUInt64LE(BigInt(e.len), HEAD + 16 * i + 8);
  });
  return b;
}

/** A mapped copy's sums object: the map, then the sums of the chunks touching data. */
export function encodeSums(m: ExtentMap, sums: Buffer): Buffer {
  return Buffer.concat([encodeMap(m), sums]);
}

/** A copy's verified index: which chunk has which sum, and the map (null: dense copy). */
export interface CopyIndex {
  map: ExtentMap | null;
  /** 32 bytes per summed chunk (empty for a tree: its leaves are in `tree.blocks`). */
  sums: Buffer;
  /** For a mapped copy, the chunks that have a sum (dataChunks). */
  summed: number[] | null;
  /** A two-level sums object (sums-tree.ts): level 1 verified, blocks of leaves as loaded. */
  tree?: TreeIndex;
}

/** What a reader holds of a two-level sums object: every buffer here was verified. */
export interface TreeIndex {
  layout: TreeLayout;
  l1: Buffer;
  /** Block j -> its leaves (TREE_BLOCK sums, the last block fewer). */
  blocks: Map<number, Buffer>;
  /** Blocks being fetched (shared by concurrent readers; dropped on failure). */
  loading: Map<number, Promise<void>>;
}

/** Chunk i's sum; null when the copy stores nothing for it (all hole: zeros). */
export function sumOf(ix: CopyIndex, i: number): Buffer | null {
  if (ix.tree) return sumsFrom(ix, i, i + 1); // its block loaded first (sums-fetch.ts loadLeaves)
  const k = ix.summed ? sumIndex(ix.summed, i) : i;
  return k < 0 ? null : ix.sums.subarray(k * SUM_BYTES, (k + 1) * SUM_BYTES);
}

/**
 * The sums of chunks from i on, as many as one buffer holds contiguously (at most up to
 * `last`): a dense copy's flat sums, or the rest of chunk i's block of leaves. Not for a
 * sparse copy (its sums skip the all-hole chunks).
 */
export function sumsFrom(ix: CopyIndex, i: number, last: number): Buffer {
  if (ix.summed) throw new Error('sumsFrom: a sparse copy has no contiguous sums');
  if (ix.tree) {
    const k = i % TREE_BLOCK;
    const block = ix.tree.blocks.get(Math.floor(i / TREE_BLOCK));
    // A caller checks a chunk only after loading its block (sums-fetch.ts loadLeaves).
    if (!block) throw new Error(`leaf sum of chunk ${i} not loaded`);
    return block.subarray(k * SUM_BYTES, Math.min(block.length, (k + last - i) * SUM_BYTES));
  }
  return ix.sums.subarray(i * SUM_BYTES, last * SUM_BYTES);
}

const u64 = (b: Buffer, at: number): number => {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MapError(`value ${v} at byte ${at} is too large`);
  return Number(v);
};

/**
 * Parses and checks a mapped sums object against what the record says (logical size,
 * stored size, chunk size). Throws MapError with the reason on anything inconsistent.
 */
export function decodeSums(b: Buffer, want: { size: number; stored: number; chunk: number }): CopyIndex {
  if (b.length < HEAD || !b.subarray(0, 4).equals(MAGIC)) throw new MapError('not a data map (bad header)');
  const size = u64(b, 4);
  const stored = u64(b, 12);
  const count = b.readUInt32LE(20);
  if (size !== want.size) throw new MapError(`map is for ${size} bytes, the file has ${want.size}`);
  if (stored !== want.stored) throw new MapError(`map stores ${stored} bytes, the record says ${want.stored}`);
  if (count > MAX_EXTENTS || HEAD + 16 * count > b.length) throw new MapError(`map claims ${count} extents in ${b.length} bytes`);
  const list: Extent[] = [];
  let prevEnd = -1;
  for (let i = 0; i < count; i++) {
    const e = { off: u64(b, HEAD + 16 * i), len: u64(b, HEAD + 16 * i + 8) };
    // Strictly apart: an encoder never writes adjacent extents, so this is not one of ours.
    if (e.off <= prevEnd) throw new MapError(`extent ${i} (${e.off}+${e.len}) is not after the previous one`);
    prevEnd = e.off + e.len;
    list.push(e);
  }
  const map = makeMap(size, list);
  if (map.stored !== stored) throw new MapError(`extents add up to ${map.stored} bytes, the map says ${stored}`);
  const summed = dataChunks(map, want.chunk);
  const sums = b.subarray(HEAD + 16 * count);
  if (sums.length !== summed.length * SUM_BYTES) throw new MapError(`${sums.length} bytes of sums for ${summed.length} chunks with data`);
  return { map, sums, summed };
}
