// Reading one chunk of a copy back from its tier, verified: shared by the recall service
// (recall/fill.ts) and partial re-release (engine/verify-resident.ts).
//
// Invariants:
// - the copy's index (`${key}.sums`: sums, and for a sparse copy its data map) is checked
//   against the record's sumsSha and, for a map, against the record's sizes
//   (extent-map.ts decodeSums) before anything in it is believed;
// - a chunk is rebuilt over its logical range (zeros in the map's holes) and checked
//   against its sum before it is returned; an all-hole chunk of a mapped copy costs no GET;
// - every GET is bounded by the tier timeout, even if the tier ignores its signal;
// - a dense run's pooled buffer (streamDenseRun) goes back to the pool only once its GET has
//   settled with an answer: after a timeout the tier may still write into it, so it is dropped.
import { createHash } from 'node:crypto';
import { giveRunBuf, sha256Off, sha256Units, sha256UnitsHere, takeRunBuf } from './hasher.js';
import { TierError, type Tier } from '../tiers/tier.js';
import { chunkCount, storedSize, type StateRecord } from '../record/state-record.js';
import { objectSpan, piecesOf, SUM_BYTES, sumOf, sumsFrom, type CopyIndex, type ExtentMap, type Piece } from './extent-map.js';
import { getIntoWithTimeout, getWithTimeout } from './tier-get.js';

/**
 * Runs of more chunks than this are hashed on the hasher thread (hasher.ts); a chunk or two
 * on the caller's (a reader waits for them, and the trip would cost more than it saves).
 */
export const OFF_LOOP_CHUNKS = 2;

export { getWithTimeout } from './tier-get.js';
export { fetchChunkSums } from './sums-fetch.js';

type Copy = NonNullable<StateRecord['copy']>;

/** Bytes of one chunk's SHA-256 in a copy's `${key}.sums` object. */
export const SUM_LEN = SUM_BYTES;

export interface CopyChunk {
  /** The chunk's logical bytes (zeros in holes), verified; empty when the chunk is all hole
   *  (no pieces: nothing fetched, nothing to write, its sum is the zero chunk's). */
  data: Buffer;
  /** Where the copy has data inside the chunk (the rest are holes: write nothing there). */
  pieces: Piece[];
  /** Bytes fetched from the tier. */
  fetched: number;
}

/** Chunk i's byte range [start, end) in a file of `size` bytes. */
export function chunkRange(i: number, chunk: number, size: number): { start: number; end: number } {
  return { start: i * chunk, end: Math.min(size, (i + 1) * chunk) };
}

/** Chunk i of the copy rebuilt from the object (zeros in the map's holes), not yet verified. */
export async function readCopyChunk(tier: Tier, copy: Copy, map: ExtentMap | null, i: number, timeoutMs: number): Promise<CopyChunk> {
  const b = chunkRange(i, copy.chunk, copy.size);
  const len = b.end - b.start;
  const pieces: Piece[] = map ? piecesOf(map, b.start, b.end) : [{ kind: 'data', at: b.start, len, obj: b.start }];
  const span = objectSpan(pieces);
  // All hole: no GET, and no 4 MiB of zeros to hash (a 20 GiB claim is 5,120 such chunks).
  if (!span) return { data: Buffer.alloc(0), pieces: [], fetched: 0 };
  const got = await getWithTimeout(tier, copy.key, span.offset, span.length, timeoutMs, copy.foreign);
  if (got.length !== span.length) {
    throw new TierError('ShortObject', 'get', tier.name, copy.key, `range ${span.offset}+${span.length} returned ${got.length} bytes`);
  }
  let data = got;
  if (span.length !== len) {
    data = Buffer.alloc(len);
    for (const p of pieces) if (p.kind === 'data') got.copy(data, p.at - b.start, p.obj - span.offset, p.obj - span.offset + p.len);
  }
  return { data, pieces: pieces.filter((p) => p.kind === 'data'), fetched: got.length };
}

/**
 * Chunks [first, last) of the copy with one ranged GET (their object bytes are contiguous),
 * each rebuilt like readCopyChunk; not yet verified. Fewer, larger GETs for read-ahead.
 */
export async function readCopyRun(tier: Tier, copy: Copy, map: ExtentMap | null, first: number, last: number, timeoutMs: number): Promise<CopyChunk[]> {
  if (last - first === 1) return [await readCopyChunk(tier, copy, map, first, timeoutMs)];
  const all = { start: chunkRange(first, copy.chunk, copy.size).start, end: chunkRange(last - 1, copy.chunk, copy.size).end };
  const span = objectSpan(map ? piecesOf(map, all.start, all.end) : [{ kind: 'data', at: all.start, len: all.end - all.start, obj: all.start }]);
  const got = span ? await getWithTimeout(tier, copy.key, span.offset, span.length, timeoutMs, copy.foreign) : Buffer.alloc(0);
  if (span && got.length !== span.length) {
    throw new TierError('ShortObject', 'get', tier.name, copy.key, `range ${span.offset}+${span.length} returned ${got.length} bytes`);
  }
  const out: CopyChunk[] = [];
  for (let i = first; i < last; i++) {
    const b = chunkRange(i, copy.chunk, copy.size);
    const pieces = (map ? piecesOf(map, b.start, b.end) : [{ kind: 'data', at: b.start, len: b.end - b.start, obj: b.start } as Piece]).filter(
      (p): p is Extract<Piece, { kind: 'data' }> => p.kind === 'data',
    );
    const one = pieces.length === 1 ? pieces[0]! : null;
    if (one && one.at === b.start && one.len === b.end - b.start) {
      // All data (every chunk of a dense copy): a view of the GET's buffer, no copy.
      const at = one.obj - span!.offset;
      out.push({ data: got.subarray(at, at + one.len), pieces, fetched: one.len });
      continue;
    }
    const data = Buffer.alloc(b.end - b.start);
    let fetched = 0;
    for (const p of pieces) {
      got.copy(data, p.at - b.start, p.obj - span!.offset, p.obj - span!.offset + p.len);
      fetched += p.len;
    }
    out.push({ data, pieces, fetched });
  }
  return out;
}

/** A verified piece of a streamed run: chunks [first, last), their bytes (a view valid only during the call). */
export type TakePiece = (first: number, last: number, data: Buffer) => void;

/**
 * Chunks [first, last) of a dense copy with sums (no map, not imported), in pieces of
 * `piece` chunks: one ranged GET into a pooled shared buffer (no allocation per GET), each
 * piece hashed in place on the hasher thread (one message per piece, not a buffer per
 * chunk), each chunk's SHA-256 compared with its sum (as many at once as lie contiguous in
 * the index: a block of 64 leaves, or the flat sums), and handed to `take` as soon as its
 * bytes are in (getInto's progress) while the rest still arrives: one request for many
 * pieces, and a reader waits for its piece, not for the whole GET (a run of one piece:
 * recall/fill.ts fetchAndCommit). `sums` resolves to the index with these chunks' leaves
 * loaded; it is awaited once the first piece's bytes are in, so a failed GET throws at once
 * and never waits for it. Short answer: ShortObject; any mismatch: Corrupt. The
 * tier writes only past what it reported, so a piece's bytes never change once hashed.
 * `take` runs synchronously (the commit); its throw, or any failure, ends the run: the GET
 * is stopped and the buffer dropped, not pooled (a read may still write into it); the pieces
 * already taken stay taken.
 */
export async function streamDenseRun(tier: Tier, copy: Copy, sums: Promise<CopyIndex>, first: number, last: number, piece: number, timeoutMs: number, take: TakePiece): Promise<void> {
  const start = first * copy.chunk;
  const len = Math.min(copy.size, last * copy.chunk) - start;
  const buf = takeRunBuf(len);
  sums.catch(() => {}); // awaited below; a failed GET must not wait for it
  const stop = new AbortController();
  const st: { have: number; n: number | null; err: unknown; wake: (() => void) | null } = { have: 0, n: null, err: null, wake: null };
  const poke = () => {
    const w = st.wake;
    st.wake = null;
    w?.();
  };
  const progress = (n: number) => {
    st.have = n;
    poke();
  };
  const get = getIntoWithTimeout(tier, copy.key, start, len, buf, timeoutMs, undefined, progress, stop.signal).then(
    (n) => ((st.n = n), (st.have = Math.max(st.have, n)), poke()), // a tier without progress: all at once
    (err: unknown) => ((st.err = err ?? new Error('get failed')), poke()),
  );
  let ok = false;
  try {
    for (let pf = first; pf < last; pf += piece) {
      const pl = Math.min(last, pf + piece);
      const end = Math.min(copy.size, pl * copy.chunk) - start;
      while (st.have < end) {
        if (st.err !== null) throw st.err;
        if (st.n !== null) throw new TierError('ShortObject', 'get', tier.name, copy.key, `range ${start}+${len} returned ${st.n} bytes`);
        await new Promise<void>((r) => (st.wake = r));
      }
      const ix = await sums;
      const a = (pf - first) * copy.chunk;
      const view = buf.subarray(a, end);
      const digests = pl - pf > OFF_LOOP_CHUNKS ? await sha256Units(view, copy.chunk) : sha256UnitsHere(view, copy.chunk);
      checkRun(tier, copy, ix, pf, pl, digests);
      take(pf, pl, view);
    }
    await get;
    if (st.err !== null) throw st.err;
    ok = true;
  } finally {
    if (ok) giveRunBuf(buf);
    else stop.abort(); // the buffer is dropped: the GET may still be writing into it
  }
}

/** Throws Corrupt unless `digests` (32 bytes per chunk from `first`) equal the chunks' sums. */
function checkRun(tier: Tier, copy: Copy, ix: CopyIndex, first: number, last: number, digests: Buffer): void {
  for (let i = first; i < last; ) {
    const want = sumsFrom(ix, i, last);
    const n = want.length / SUM_BYTES;
    const have = digests.subarray((i - first) * SUM_BYTES, (i - first + n) * SUM_BYTES);
    if (n === 0 || !have.equals(want)) {
      let bad = i;
      while (n > 0 && bad < i + n && have.subarray((bad - i) * SUM_BYTES, (bad - i + 1) * SUM_BYTES).equals(want.subarray((bad - i) * SUM_BYTES, (bad - i + 1) * SUM_BYTES))) bad++;
      const b = chunkRange(bad, copy.chunk, copy.size);
      throw new TierError('Corrupt', 'get', tier.name, copy.key, `SHA-256 of chunk ${bad} (range ${b.start}+${b.end - b.start}) differs from its sum`);
    }
    i += n;
  }
}

/**
 * Throws TierError Corrupt unless chunk i's bytes match its sum. `ix` null: a copy made
 * before chunk sums (only a GET of the whole object can be checked, against the record's SHA-256).
 */
export function verifyCopyChunk(tier: Tier, copy: Copy, ix: CopyIndex | null, i: number, c: CopyChunk): void {
  if (skipsHash(copy, ix, i, c)) return;
  checkChunk(tier, copy, ix, i, c, createHash('sha256').update(c.data).digest());
}

/**
 * verifyCopyChunk for chunks [first, first + chunks.length), hashed on a thread of their own
 * (hasher.ts): a long run's SHA-256 runs on another core while the event loop answers events
 * and writes other runs (hashing 2 MiB on the loop held every event arriving meanwhile ~5 ms).
 */
export async function verifyRunOff(tier: Tier, copy: Copy, ix: CopyIndex | null, first: number, chunks: CopyChunk[]): Promise<void> {
  const todo = chunks.map((c, k) => k).filter((k) => !skipsHash(copy, ix, first + k, chunks[k]!));
  const sums = await sha256Off(todo.map((k) => chunks[k]!.data));
  todo.forEach((k, n) => checkChunk(tier, copy, ix, first + k, chunks[k]!, sums[n]!));
}

function skipsHash(copy: Copy, ix: CopyIndex | null, i: number, c: CopyChunk): boolean {
  return !!ix?.map && c.pieces.length === 0 && c.fetched === 0 && sumOf(ix, i) === null; // all hole by the verified map
}

function checkChunk(tier: Tier, copy: Copy, ix: CopyIndex | null, i: number, c: CopyChunk, digest: Buffer): void {
  // A replaced or corrupt object gives EIO, never wrong bytes (test/reliability/tier-faults.test.ts).
  const b = chunkRange(i, copy.chunk, copy.size);
  if (ix) {
    const sum = sumOf(ix, i);
    // No sum: the map calls the whole chunk a hole (dataChunks and piecesOf agree), nothing fetched.
    if (sum ? !digest.equals(sum) : c.fetched !== 0) {
      throw new TierError('Corrupt', 'get', tier.name, copy.key, `SHA-256 of chunk ${i} (range ${b.start}+${b.end - b.start}) differs from its sum`);
    }
  } else if (b.start === 0 && b.end - b.start === storedSize(copy) && copy.sha256 && digest.toString('hex') !== copy.sha256) {
    throw new TierError('Corrupt', 'get', tier.name, copy.key, `SHA-256 of the object differs from the file's record`);
  }
}

/**
 * Whether chunks [first, last) are the whole of a dense copy whose record has its SHA-256:
 * such a run is verified against that (verifyWholeRun), with no GET of the sums object. A
 * small file recalled whole costs one GET. Not for a sparse copy (its SHA-256 covers its
 * map too) nor an imported one (its hash may be unknown; its GETs are conditional).
 */
export function wholeByRecord(copy: Copy, first: number, last: number): boolean {
  return first === 0 && last === chunkCount(copy.size, copy.chunk) && !copy.sparse && copy.foreign === undefined && /^[0-9a-f]{64}$/.test(copy.sha256);
}

/** Throws TierError Corrupt unless the run (every chunk, in order: wholeByRecord) hashes to the record's SHA-256. */
export function verifyWholeRun(tier: Tier, copy: Copy, chunks: CopyChunk[]): void {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c.data);
  if (h.digest('hex') !== copy.sha256) throw new TierError('Corrupt', 'get', tier.name, copy.key, `SHA-256 of the object differs from the file's record`);
}

/** Chunk i of the copy, verified against its sum. */
export async function fetchCopyChunk(tier: Tier, copy: Copy, ix: CopyIndex | null, i: number, timeoutMs: number): Promise<CopyChunk> {
  const c = await readCopyChunk(tier, copy, ix?.map ?? null, i, timeoutMs);
  verifyCopyChunk(tier, copy, ix, i, c);
  return c;
}
