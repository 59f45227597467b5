// Fetching chunks (one, or a run with one GET) from their tier and writing them into a
// file through an event fd.
//
// Order: ranged GET (bounded by the tier timeout) -> SHA-256 against each chunk's sum
// (the copy's `${key}.sums` object, checked against the record's sumsSha: a two-level one's
// level 1 once per inode, then the blocks of leaves a run needs, GET beside its data; a flat
// one whole, once per inode; every sums byte counts as fetched. Any mismatch: EIO, nothing
// written; an imported copy has no sums:
// its GETs are conditional on its validator, 'Changed' -> EIO) -> re-check the file still has
// the expected size and mtime -> pwrite (a chunk a crash took: into its holes only) -> restore mtime
// (same tick: no user write can slip in between) -> set the chunk bits -> persist the
// map. No fdatasync per chunk: the filesystem is the witness of what survived a crash
// (chunks/fs-resident.ts: a bit is believed only over data, a re-fetch never writes
// over data), and the handler syncs a file once before recording it complete.
// A sparse copy (chunks/extent-map.ts): the chunk is rebuilt from its data pieces with
// zeros in the holes, checked, and only the data pieces are written: holes stay holes; a
// chunk with no data needs no GET and no write (skipHoleChunks).
import { fstatSync, writeSync } from 'node:fs';
import type { TierTuning } from '../dsl/ast.js';
import { futimens, nsToTimespec, UTIME_OMIT } from '../kernel/libc.js';
import type { Logger } from '../log.js';
import type { Tier } from '../tiers/tier.js';
import { ThrottledTier } from '../tiers/throttled.js';
import { chunkRange, streamDenseRun, OFF_LOOP_CHUNKS, readCopyRun, verifyCopyChunk, verifyRunOff, verifyWholeRun, wholeByRecord, type CopyChunk } from '../chunks/copy-chunk.js';
import { fetchChunkSums, fetchTreeIndex, loadLeaves } from '../chunks/sums-fetch.js';
import { sumIndex, type CopyIndex } from '../chunks/extent-map.js';
import { holesIn, lostChunks } from '../chunks/fs-resident.js';
import { RUN_BYTES } from './fast-path.js';
import type { FdRef } from './fdref.js';
import { persistResident, type InodeEntry } from './inode.js';

/** The file changed under us (write, truncate, O_TRUNC): the caller re-decides. */
export class StaleFileError extends Error {}

/** A counting semaphore: at most `n` fetches per tier in flight. */
export class Semaphore {
  private waiters: (() => void)[] = [];
  constructor(private n: number) {}
  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.n > 0) this.n--;
    else await new Promise<void>((r) => this.waiters.push(r));
    try {
      return await f();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.n++;
    }
  }
}

export { getWithTimeout, SUM_LEN } from '../chunks/copy-chunk.js';
export { fetchChunkSums } from '../chunks/sums-fetch.js';

export interface FillEnv {
  tier: Tier;
  tuning: TierTuning;
  sem: Semaphore;
  onBytes(n: number): void;
  log?: Logger;
}

let warnedUnsummed = false;

/**
 * The copy's verified chunk sums, fetched once per inode (a two-level copy: level 1, and the
 * leaves of `near` when they are close to it); null for a record made before sums existed.
 */
function chunkSums(e: InodeEntry, env: FillEnv, near: { first: number; last: number } | null = null): Promise<CopyIndex | null> {
  // An imported object has no sums (tier did not write it): every GET is conditional on
  // its validator instead (chunks/copy-chunk.ts), so a replaced object is 'Changed', never mixed.
  if (e.copy.foreign !== undefined) return Promise.resolve(null);
  if (!e.copy.sumsSha) {
    if (!warnedUnsummed) {
      warnedUnsummed = true;
      env.log?.warn('recall of a copy without chunk sums (archived by an older version): only whole-object GETs are verified; re-archive to add them', { op: 'recall', tier: env.tier.name, key: e.copy.key });
    }
    return Promise.resolve(null);
  }
  if (e.sums) return Promise.resolve(e.sums);
  // A fetch begun by an earlier event may be one doomed by an outage that has since ended:
  // if it fails, this event makes one fresh attempt of its own rather than inherit the error.
  if (e.sumsLoading) return e.sumsLoading.catch(() => loadSums(e, env, near));
  return loadSums(e, env, near);
}

/**
 * chunkSums with the leaves of chunks [first, last) loaded (a two-level copy's: sums-fetch.ts
 * loadLeaves); `through`: when they must be fetched, those up to that chunk come too.
 */
function sumsFor(e: InodeEntry, env: FillEnv, first: number, last: number, through = last): Promise<CopyIndex | null> {
  return chunkSums(e, env, { first, last }).then(async (ix) => {
    if (ix) await loadLeaves(env.tier, e.copy, ix, first, last, env.tuning.timeoutMs, env.onBytes, through);
    return ix;
  });
}

/**
 * A stream's GET of chunks [first, last) loads the sums of this many such GETs (itself and
 * the next ones) when it needs any: for a 512 MiB `cat` from S3, 16 sums GETs instead of 64
 * (each ~2 ms of the server's CPU and a request of ours; the sums are 1/512 of the data, so
 * the extra bytes stay far inside the stream's fetch budget).
 */
const SUMS_AHEAD_RUNS = 4;

/** Shared by concurrent chunk fetches; not cached on failure, so a later event tries again. */
function loadSums(e: InodeEntry, env: FillEnv, near: { first: number; last: number } | null): Promise<CopyIndex> {
  const t = env.tuning.timeoutMs;
  e.sumsLoading ??= (e.copy.tree ? fetchTreeIndex(env.tier, e.copy, t, near, env.onBytes) : fetchChunkSums(env.tier, e.copy, t, env.onBytes))
    .then((b) => (e.sums = b))
    .finally(() => (e.sumsLoading = undefined));
  return e.sumsLoading;
}

/**
 * A sparse copy: of `list`, the chunks that hold no data in the copy are set resident at
 * once (nothing to fetch or write: the file is a hole there since its release, and a write
 * into a missing chunk is always preceded by its fill); returns the chunks still to fetch.
 * A 16 TiB claim recalled whole is then a walk over its data chunks, not 4 Mi fetches.
 */
export async function skipHoleChunks(e: InodeEntry, list: number[], fd: number, env: FillEnv): Promise<number[]> {
  if (!e.copy.sparse || list.length === 0) return list;
  const ix = await chunkSums(e, env);
  if (!ix?.summed) return list;
  const need: number[] = [];
  const set: number[] = [];
  for (const i of list) {
    if (sumIndex(ix.summed, i) >= 0 || e.fetching.has(i)) need.push(i);
    else if (!e.resident.has(i)) {
      e.resident.set(i);
      set.push(i);
    }
  }
  if (set.length > 0) {
    try {
      persistResident(fd, e);
    } catch (err) {
      for (const i of set) e.resident.clear(i); // as fetchAndCommit: never a bit only in memory after a failed store
      throw err;
    }
  }
  return need;
}

/**
 * Once per loaded entry: drops resident bits whose bytes a crash took (the file has a hole
 * under the copy's data there; chunks/fs-resident.ts), so those chunks are fetched again.
 * A sparse copy needs its data map (its sums object) for that; a dense one does not.
 */
export async function dropLostChunks(e: InodeEntry, fd: number, env: FillEnv, size: number): Promise<number[]> {
  if (e.fsChecked) return [];
  if (e.resident.count() === 0) {
    e.fsChecked = true;
    return [];
  }
  const map = e.copy.sparse ? ((await chunkSums(e, env))?.map ?? null) : null;
  if (e.fsChecked) return [];
  const lost = lostChunks(fd, e.copy, map, e.resident, size);
  for (const i of lost) e.resident.clear(i);
  if (lost.length > 0) e.lost = new Set(lost);
  e.fsChecked = true;
  if (lost.length > 0) {
    try {
      persistResident(fd, e);
    } catch (err) {
      env.log?.warn('resident map not stored after dropping lost chunks (they are fetched again either way)', { op: 'recall', key: e.copy.key, err });
    }
  }
  return lost;
}

/** Fetches chunk i (shared with any concurrent reader of it) and makes it durable. */
export function fillChunk(e: InodeEntry, i: number, ref: FdRef, env: FillEnv): Promise<void> {
  return e.fetching.get(i) ?? fillRun(e, i, i + 1, ref, env);
}

/**
 * Fetches chunks [first, last) with one GET and writes them into the file;
 * every chunk of the run is registered as fetching (a reader of any of them waits on it).
 * The caller passes chunks that are neither resident nor fetching.
 */
export function fillRun(e: InodeEntry, first: number, last: number, ref: FdRef, env: FillEnv): Promise<void> {
  ref.retain();
  const p = env.sem
    .run(() => fetchAndCommit(e, first, last, ref.fd, env))
    .finally(() => {
      for (let i = first; i < last; i++) if (e.fetching.get(i) === p) e.fetching.delete(i);
      ref.release();
    });
  for (let i = first; i < last; i++) e.fetching.set(i, p);
  return p;
}

/**
 * The longest GET a stream's read-ahead makes of `tier`: an S3 tier pays per request (a
 * signed request, a round trip, the server's own per-request work), so a long stream reads
 * in GETs of up to 16 MiB committed in 2 MiB pieces (fillStream); a local tier's read
 * costs nothing per request, and reports no progress, so it keeps runs of RUN_BYTES. A tier
 * with a byte rate (bwlimit) keeps them too: its GET is charged whole before it starts, so
 * at 0.5 MiB/s a 16 MiB GET would hold the next one past the tier timeout (EIO).
 */
export function streamGetBytes(tier: Tier): number {
  if (tier instanceof ThrottledTier && tier.limiter.bytesPerSec !== undefined) return RUN_BYTES;
  return tier.kind === 's3' ? STREAM_GET_BYTES : RUN_BYTES;
}

/** TIER_STREAM_GET_MIB (experiments), read once: a whole number of MiB from 1 to 64, else 16. */
const STREAM_GET_BYTES = (() => {
  const v = process.env.TIER_STREAM_GET_MIB;
  const mib = v !== undefined && /^\d+$/.test(v.trim()) ? Number(v) : 16;
  return (mib >= 1 && mib <= 64 ? mib : 16) * 1024 * 1024;
})();

/**
 * fillRun for a long run of a stream (read-ahead): one GET for chunks [first, last), its
 * pieces of `piece` chunks each verified and committed as their bytes arrive
 * (copy-chunk.ts streamDenseRun), each piece a fetch of its own for readers of its chunks.
 * Only a dense copy with sums streams; any other run is one fillRun. Returns the pieces'
 * fetches. One slot of the tier's concurrency for the whole GET.
 */
export function fillStream(e: InodeEntry, first: number, last: number, piece: number, ref: FdRef, env: FillEnv): Promise<void>[] {
  if (last - first <= piece || !denseSummed(e, first, last)) return [fillRun(e, first, last, ref, env)];
  ref.retain();
  const parts: { first: number; last: number; resolve: () => void; reject: (err: unknown) => void; settled: boolean }[] = [];
  const out: Promise<void>[] = [];
  for (let pf = first; pf < last; pf += piece) {
    const pl = Math.min(last, pf + piece);
    const part = { first: pf, last: pl, resolve: () => {}, reject: (_: unknown) => {}, settled: false };
    const raw = new Promise<void>((res, rej) => ((part.resolve = res), (part.reject = rej)));
    const p: Promise<void> = raw.finally(() => {
      for (let i = pf; i < pl; i++) if (e.fetching.get(i) === p) e.fetching.delete(i);
    });
    for (let i = pf; i < pl; i++) e.fetching.set(i, p);
    parts.push(part);
    out.push(p);
  }
  const settle = (k: number, err?: unknown) => {
    const part = parts[k]!;
    if (part.settled) return;
    part.settled = true;
    if (err === undefined) part.resolve();
    else part.reject(err);
  };
  env.sem
    .run(async () => {
      const through = last + (SUMS_AHEAD_RUNS - 1) * (last - first);
      const sums = sumsFor(e, env, first, last, through).then((ix) => ix!); // a copy with sums: never null
      const take = commitPiece(e, ref.fd, env);
      let k = 0;
      await streamDenseRun(env.tier, e.copy, sums, first, last, piece, env.tuning.timeoutMs, (pf, pl, data) => {
        take(pf, pl, data);
        settle(k++);
      });
    })
    .then(
      () => parts.forEach((_, k) => settle(k)),
      (err: unknown) => parts.forEach((_, k) => settle(k, err)),
    )
    .finally(() => ref.release());
  return out;
}

/** A dense copy with sums (every new copy but a small or sparse one) and a run it may fetch on the dense path. */
function denseSummed(e: InodeEntry, first: number, last: number): boolean {
  return !e.copy.sparse && e.copy.foreign === undefined && !!e.copy.sumsSha && (!!e.sums || !wholeByRecord(e.copy, first, last));
}

async function fetchAndCommit(e: InodeEntry, first: number, last: number, fd: number, env: FillEnv): Promise<void> {
  if (e.resident.missing({ start: first, end: last }).length === 0) return;
  // A dense copy with sums (every new copy but a small or sparse one): the run's bytes in
  // one reused buffer, verified in one batch, then written (copy-chunk.ts streamDenseRun,
  // the whole run one piece).
  if (denseSummed(e, first, last)) {
    const sums = sumsFor(e, env, first, last).then((ix) => ix!); // a copy with sums: never null
    await streamDenseRun(env.tier, e.copy, sums, first, last, last - first, env.tuning.timeoutMs, commitPiece(e, fd, env));
    return;
  }
  let chunks: CopyChunk[];
  if (!e.sums && wholeByRecord(e.copy, first, last)) {
    // The whole file in one GET (a small file): checked against the record's SHA-256.
    chunks = await readCopyRun(env.tier, e.copy, null, first, last, env.tuning.timeoutMs);
    verifyWholeRun(env.tier, e.copy, chunks);
  } else {
    // A sparse copy's map comes with its sums: needed before the data GET. An imported or
    // unsummed one: both at once.
    const sumsP = sumsFor(e, env, first, last);
    let sums: CopyIndex | null;
    if (e.copy.sparse) {
      sums = await sumsP;
      chunks = await readCopyRun(env.tier, e.copy, sums?.map ?? null, first, last, env.tuning.timeoutMs);
    } else {
      [sums, chunks] = await Promise.all([sumsP, readCopyRun(env.tier, e.copy, null, first, last, env.tuning.timeoutMs)]);
    }
    // A long run is hashed off the event loop (chunks/hasher.ts); a chunk or two on it (a
    // reader waits for them, and a trip to another thread would cost more than it saves).
    if (last - first > OFF_LOOP_CHUNKS) await verifyRunOff(env.tier, e.copy, sums, first, chunks);
    else chunks.forEach((c, k) => verifyCopyChunk(env.tier, e.copy, sums, first + k, c));
  }
  env.onBytes(chunks.reduce((n, c) => n + c.fetched, 0));
  commit(e, first, last, fd, (i) => {
    const c = chunks[i - first]!;
    return { data: c.data, base: chunkRange(i, e.copy.chunk, e.copy.size).start, pieces: c.pieces };
  });
}

/** streamDenseRun's take: counts a verified piece's bytes, then commits its chunks (`data` starts at chunk pf). */
function commitPiece(e: InodeEntry, fd: number, env: FillEnv): (pf: number, pl: number, data: Buffer) => void {
  return (pf, pl, data) => {
    env.onBytes(data.length);
    commit(e, pf, pl, fd, () => ({ data, base: pf * e.copy.chunk, pieces: null }));
  };
}

/** Chunk i's verified bytes: `data` holds file offset `base` at 0; `pieces` null: all data. */
type ChunkBytes = (i: number) => { data: Buffer; base: number; pieces: { at: number; len: number }[] | null };

/** Writes the verified chunks [first, last) still missing into the file, then sets and stores their bits. */
function commit(e: InodeEntry, first: number, last: number, fd: number, bytesOf: ChunkBytes): void {
  if (e.resident.missing({ start: first, end: last }).length === 0) return; // filled meanwhile by a whole-file pass
  // Commit: nothing below awaits until the mtime is restored.
  const st = fstatSync(fd, { bigint: true });
  if (Number(st.size) !== e.expect.size || st.mtimeNs !== e.expect.mtimeNs) {
    throw new StaleFileError(`file changed during recall (size ${st.size}, mtime ${st.mtimeNs})`);
  }
  // Only chunks still missing are written (one filled meanwhile by a whole-file pass may
  // hold a user's write by now), and only the copy's data pieces: its holes stay holes.
  // Never extend a file that was truncated: write only what lies below its size.
  const done: number[] = [];
  const writes: Write[] = [];
  for (let i = first; i < last; i++) {
    if (e.resident.has(i)) continue;
    done.push(i);
    const c = bytesOf(i);
    const lost = e.lost?.has(i) === true;
    const r = chunkRange(i, e.copy.chunk, e.copy.size);
    for (const p of c.pieces ?? [{ at: r.start, len: r.end - r.start }]) {
      const end = Math.min(p.at + p.len, e.expect.size, e.keep);
      // A chunk a crash took: only into the file's holes (data there is ours from before
      // the crash, or a user's write), hole by hole. Any other missing chunk is written whole:
      // data in it can only be zeros of the block an O_APPEND write put at EOF (its event
      // names offset 0, not EOF: kernel-facts.md), where the copy's bytes belong.
      if (lost) {
        for (const h of holesIn(fd, p.at, end)) writes.push({ buf: c.data, off: h.start - c.base, at: h.start, len: h.end - h.start, join: false });
      } else if (end > p.at) {
        writes.push({ buf: c.data, off: p.at - c.base, at: p.at, len: end - p.at, join: true });
      }
    }
  }
  try {
    for (const w of coalesce(writes)) {
      for (let n = 0; n < w.len; ) n += writeSync(fd, w.buf, w.off + n, w.len - n, w.at + n);
    }
  } finally {
    // Also after a short write (ENOSPC): the user's mtime must never become our write time.
    if (writes.length > 0) futimens(fd, { sec: 0, nsec: UTIME_OMIT }, mtimeSpec(e.expect.mtimeNs));
  }
  // No fdatasync: a crash turns bytes not yet on disk into holes, and a bit is believed
  // only over data (chunks/fs-resident.ts). The file is synced once, when it is complete.
  for (const i of done) {
    e.resident.set(i);
    e.lost?.delete(i);
  }
  try {
    persistResident(fd, e);
  } catch (err) {
    // A bit only in memory would let a write into this chunk through while the disk map
    // says missing: a later fill (or partial re-release) would put the copy's bytes over it.
    for (const i of done) e.resident.clear(i);
    throw err;
  }
}

export const mtimeSpec = nsToTimespec;

/** One pwrite: `len` bytes of `buf` from `off`, at file offset `at`; `join`: may merge with its neighbours. */
interface Write {
  buf: Buffer;
  off: number;
  at: number;
  len: number;
  join: boolean;
}

/**
 * Merges writes that continue each other both in the file and in memory (a dense run's
 * chunks are views of its one GET buffer): a 2 MiB run is one pwrite, not one per chunk
 * (fewer syscalls, and the page cache gets large folios, as for a file written in big
 * writes). Same bytes at the same offsets; writes not marked `join` stay as they are.
 */
export function coalesce(ws: Write[]): Write[] {
  const out: Write[] = [];
  for (const w of ws) {
    const prev = out[out.length - 1];
    const continues =
      prev?.join === true &&
      w.join &&
      prev.at + prev.len === w.at &&
      prev.buf.buffer === w.buf.buffer &&
      prev.buf.byteOffset + prev.off + prev.len === w.buf.byteOffset + w.off;
    if (!continues) {
      out.push({ ...w });
      continue;
    }
    // The same memory, continued: the same buffer (a dense run) grows in place; views of one
    // GET's buffer become one view over both.
    if (prev.buf !== w.buf) {
      prev.buf = Buffer.from(prev.buf.buffer, prev.buf.byteOffset + prev.off, prev.len + w.len);
      prev.off = 0;
    }
    prev.len += w.len;
  }
  return out;
}
