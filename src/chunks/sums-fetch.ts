// Fetching a copy's chunk sums from its tier, verified, in each of the record's formats:
//   - two-level (`copy.tree`, sums-tree.ts): level 1 checked against the record's sumsSha,
//     then each block of leaves against level 1; recall GETs only the blocks it needs;
//   - flat (copies made before, and sparse copies: map ‖ sums, extent-map.ts): the whole
//     object, checked against sumsSha;
//   - in the record (sumsInRecord: a small dense copy has no object): the data object
//     itself, checked against the record's sha256, summed here.
// Shared by the recall service (recall/fill.ts) and partial re-release (engine/verify-resident.ts).
//
// Invariants:
// - nothing fetched is believed before its hash matches what the record (or a verified
//   level 1) says; a mismatch, a short answer: TierError Corrupt (EIO for readers);
// - every byte a GET returns is reported to `onBytes` (the recall's honest count), also
//   when it then fails its check;
// - a failed block load is not cached: the next reader tries again.
import { createHash } from 'node:crypto';
import { TierError, type Tier } from '../tiers/tier.js';
import { chunkCount, sumsInRecord, sumsKey, type StateRecord } from '../record/state-record.js';
import { decodeSums, MapError, SUM_BYTES, type CopyIndex, type TreeIndex } from './extent-map.js';
import { blockMatches, blockSpan, blocksOf, l1Matches, TREE_BLOCK, treeLayout } from './sums-tree.js';
import { getWithTimeout } from './tier-get.js';
import { sha256UnitsHere } from './hasher.js';

type Copy = NonNullable<StateRecord['copy']>;
type OnBytes = (n: number) => void;
const none: OnBytes = () => {};

/** A first GET of level 1 also takes the blocks it needs when they start this close to its end. */
const JOIN_GAP = 16 * 1024;

/**
 * What the sums of a stream's chunks cost to fetch (recall/readahead.ts budgets read-ahead
 * with it): `once` bytes for the first (a two-level copy's level 1, a flat copy's whole
 * object), then `block` bytes per `perBlock` chunks (a block of leaves; 0: none); a stream
 * whose first block starts within `join` bytes of `once`'s end gets the blocks before it
 * too (one GET).
 */
export interface SumsCost {
  once: number;
  block: number;
  perBlock: number;
  join: number;
}

/** What a recall of this copy pays for its sums; undefined when it GETs none (no sums, or sums in the record). */
export function sumsCostOf(copy: Copy): SumsCost | undefined {
  if (copy.foreign !== undefined || !copy.sumsSha || sumsInRecord(copy)) return undefined;
  if (copy.tree) return { once: treeLayout(chunkCount(copy.size, copy.chunk)).l1Len, block: TREE_BLOCK * SUM_BYTES, perBlock: TREE_BLOCK, join: JOIN_GAP };
  return { once: copy.sparse ? copy.sparse.sumsLen : chunkCount(copy.size, copy.chunk) * SUM_BYTES, block: 0, perBlock: 0, join: 0 };
}

/** SHA-256 of every `chunk`-sized piece of `data` (the last covers its real length), concatenated. */
export const flatSums = (data: Buffer, chunk: number): Buffer => sha256UnitsHere(data, chunk);

const corrupt = (tier: Tier, key: string, why: string) => new TierError('Corrupt', 'get', tier.name, key, why);

/**
 * Every chunk sum of the copy, verified (rejects with TierError Corrupt when missing, short,
 * different or inconsistent; never a release on such sums). A two-level object is fetched
 * whole here: for the engine, which hashes every resident chunk.
 */
export async function fetchChunkSums(tier: Tier, copy: Copy, timeoutMs: number, onBytes: OnBytes = none): Promise<CopyIndex> {
  if (sumsInRecord(copy)) return sumsFromObject(tier, copy, timeoutMs, onBytes);
  if (copy.tree) {
    const ix = await fetchTreeIndex(tier, copy, timeoutMs, null, onBytes);
    await loadLeaves(tier, copy, ix, 0, ix.tree!.layout.chunks, timeoutMs, onBytes);
    return ix;
  }
  const key = sumsKey(copy.key);
  const want = copy.sparse ? copy.sparse.sumsLen : chunkCount(copy.size, copy.chunk) * SUM_BYTES;
  const sums = await getWithTimeout(tier, key, 0, want, timeoutMs);
  onBytes(sums.length);
  if (sums.length !== want) throw corrupt(tier, key, `chunk sums object has ${sums.length} bytes, expected ${want}`);
  if (createHash('sha256').update(sums).digest('hex') !== copy.sumsSha) throw corrupt(tier, key, `SHA-256 of the chunk sums differs from the file's record`);
  if (!copy.sparse) return { map: null, sums, summed: null };
  try {
    return decodeSums(sums, { size: copy.size, stored: copy.sparse.stored, chunk: copy.chunk });
  } catch (e) {
    if (e instanceof MapError) throw corrupt(tier, key, `data map: ${e.message}`);
    throw e;
  }
}

/** A copy whose sums live in its record (sumsInRecord): one chunk's sum is the record's SHA-256; more are summed from the object. */
async function sumsFromObject(tier: Tier, copy: Copy, timeoutMs: number, onBytes: OnBytes): Promise<CopyIndex> {
  const check = (sums: Buffer): CopyIndex => {
    if (createHash('sha256').update(sums).digest('hex') !== copy.sumsSha) throw corrupt(tier, copy.key, `chunk sums differ from the file's record`);
    return { map: null, sums, summed: null };
  };
  if (chunkCount(copy.size, copy.chunk) === 1) return check(Buffer.from(copy.sha256, 'hex'));
  const data = await getWithTimeout(tier, copy.key, 0, copy.size, timeoutMs);
  onBytes(data.length);
  if (data.length !== copy.size || createHash('sha256').update(data).digest('hex') !== copy.sha256) {
    throw corrupt(tier, copy.key, `SHA-256 of the object differs from the file's record`);
  }
  return check(flatSums(data, copy.chunk));
}

/**
 * Level 1 of a two-level sums object, checked against the record: an index with no leaves
 * yet. `near`: chunks the caller needs next; when their blocks start within JOIN_GAP of
 * level 1's end, they come in the same GET (a read near the start of the file costs one).
 */
export async function fetchTreeIndex(tier: Tier, copy: Copy, timeoutMs: number, near: { first: number; last: number } | null, onBytes: OnBytes = none): Promise<CopyIndex> {
  const key = sumsKey(copy.key);
  const layout = treeLayout(chunkCount(copy.size, copy.chunk));
  const bl = near ? blocksOf(near.first, near.last) : null;
  const join = bl && bl.end > bl.start && blockSpan(layout, bl.start).start - layout.l1Len <= JOIN_GAP;
  const end = join ? blockSpan(layout, bl.end - 1).end : layout.l1Len;
  const got = await getWithTimeout(tier, key, 0, end, timeoutMs);
  onBytes(got.length);
  if (got.length !== end) throw corrupt(tier, key, `chunk sums object answered ${got.length} bytes of ${end}`);
  const l1 = Buffer.from(got.subarray(0, layout.l1Len));
  if (!l1Matches(l1, layout, copy.sumsSha ?? '')) throw corrupt(tier, key, `SHA-256 of the level-1 chunk sums differs from the file's record`);
  const tree: TreeIndex = { layout, l1, blocks: new Map(), loading: new Map() };
  if (join) storeBlocks(tier, key, tree, bl.start, bl.end, got);
  return { map: null, sums: Buffer.alloc(0), summed: null, tree };
}

/** Checks blocks [start, end) found in `got` (object bytes from offset 0 or `base`) and keeps them. */
function storeBlocks(tier: Tier, key: string, tree: TreeIndex, start: number, end: number, got: Buffer, base = 0): void {
  for (let j = start; j < end; j++) {
    const s = blockSpan(tree.layout, j);
    const bytes = Buffer.from(got.subarray(s.start - base, s.end - base)); // a copy: the GET's buffer may be large
    if (!blockMatches(tree.l1, tree.layout, j, bytes)) throw corrupt(tier, key, `SHA-256 of chunk sums block ${j} differs from its level-1 sum`);
    tree.blocks.set(j, bytes);
  }
}

/**
 * Makes the leaves of chunks [first, last) available in `ix` (a tree index; a no-op for
 * the other formats): one ranged GET per run of blocks not yet loaded or loading, each
 * block checked against level 1. Concurrent callers share the GETs. `through` (a stream's
 * read-ahead): when a block of [first, last) must be fetched, fetch the blocks up to chunk
 * `through` with it, so a long stream pays one sums GET per several data GETs, not one each
 * (a request costs the server more than 16 KiB of bytes: docs/recall.md "An S3 stream").
 */
export async function loadLeaves(tier: Tier, copy: Copy, ix: CopyIndex, first: number, last: number, timeoutMs: number, onBytes: OnBytes = none, through = last): Promise<void> {
  const tree = ix.tree;
  if (!tree || last <= first) return;
  const key = sumsKey(copy.key);
  const need = blocksOf(first, last);
  let short = false;
  for (let j = need.start; j < need.end && !short; j++) short = !tree.blocks.has(j) && !tree.loading.has(j);
  const bl = short && through > last ? blocksOf(first, Math.min(through, tree.layout.chunks)) : need;
  const waits: Promise<void>[] = [];
  for (let j = bl.start; j < bl.end; ) {
    const running = tree.loading.get(j);
    if (tree.blocks.has(j) || running) {
      if (running) waits.push(running);
      j++;
      continue;
    }
    let k = j + 1;
    while (k < bl.end && !tree.blocks.has(k) && !tree.loading.has(k)) k++;
    const from = blockSpan(tree.layout, j).start;
    const to = blockSpan(tree.layout, k - 1).end;
    const a = j;
    const b = k;
    const p = (async () => {
      const got = await getWithTimeout(tier, key, from, to - from, timeoutMs);
      onBytes(got.length);
      if (got.length !== to - from) throw corrupt(tier, key, `chunk sums range ${from}+${to - from} answered ${got.length} bytes`);
      storeBlocks(tier, key, tree, a, b, got, from);
    })().finally(() => {
      for (let x = a; x < b; x++) if (tree.loading.get(x) === p) tree.loading.delete(x);
    });
    for (let x = a; x < b; x++) tree.loading.set(x, p);
    waits.push(p);
    j = k;
  }
  // Every wait settles before this answers (no load left running unobserved), the first failure wins.
  const res = await Promise.allSettled(waits);
  const bad = res.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
}
