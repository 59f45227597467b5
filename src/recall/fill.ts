// Fetching one chunk from its tier and making it durable through an event fd.
//
// Order (crash-safe resident map): ranged GET (bounded by the tier timeout) -> SHA-256
// against the chunk's sum (the copy's `${key}.sums` object, fetched once per inode and
// checked against the record's sumsSha; any mismatch: EIO, nothing written; an imported
// copy has no sums: its GETs are conditional on its validator, 'Changed' -> EIO) -> re-check the file still has the expected size and mtime -> pwrite -> restore mtime
// (same tick: no user write can slip in between) -> fdatasync -> set the chunk bit ->
// persist the map. A chunk whose bit is not set is fetched again, never served.
// No fsync after the map: ext4 and xfs commit metadata in order, so any later change a
// user makes durable (their write's fsync) carries our earlier bit with it; a re-fetch
// after a crash can then never overwrite a durable user write.
import { createHash } from 'node:crypto';
import { fdatasync as fdatasyncCb, fstatSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import type { TierTuning } from '../dsl/ast.js';
import { futimens, nsToTimespec, UTIME_OMIT } from '../kernel/libc.js';
import type { Logger } from '../log.js';
import { chunkCount, sumsKey } from '../engine/state-record.js';
import { TierError, type Tier } from '../tiers/tier.js';
import type { FdRef } from './fdref.js';
import { persistResident, type InodeEntry } from './inode.js';
import { chunkBytes } from './ranges.js';

const fdatasync = promisify(fdatasyncCb);

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

/** tier.get bounded by the tier timeout even if the tier ignores its signal. */
export async function getWithTimeout(tier: Tier, key: string, offset: number, length: number, timeoutMs: number, expect?: string): Promise<Buffer> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort();
      reject(new TierError('Timeout', 'get', tier.name, key, `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([tier.get(key, { offset, length }, ac.signal, expect), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface FillEnv {
  tier: Tier;
  tuning: TierTuning;
  sem: Semaphore;
  onBytes(n: number): void;
  log?: Logger;
}

/** Bytes of one chunk's SHA-256 in a copy's `${key}.sums` object. */
export const SUM_LEN = 32;
let warnedUnsummed = false;

/**
 * Fetches a copy's `${key}.sums` and checks it against the record's sumsSha; rejects
 * (TierError Corrupt: EIO for readers, never a release) when missing, short or different.
 */
export async function fetchChunkSums(tier: Tier, copy: InodeEntry['copy'], timeoutMs: number): Promise<Buffer> {
  const key = sumsKey(copy.key);
  const want = chunkCount(copy.size, copy.chunk) * SUM_LEN;
  const sums = await getWithTimeout(tier, key, 0, want, timeoutMs);
  if (sums.length !== want) throw new TierError('Corrupt', 'get', tier.name, key, `chunk sums object has ${sums.length} bytes, expected ${want}`);
  if (createHash('sha256').update(sums).digest('hex') !== copy.sumsSha) {
    throw new TierError('Corrupt', 'get', tier.name, key, `SHA-256 of the chunk sums differs from the file's record`);
  }
  return sums;
}

/** The copy's verified chunk sums, fetched once per inode; null for a record made before sums existed. */
function chunkSums(e: InodeEntry, env: FillEnv): Promise<Buffer | null> {
  // An imported object has no sums (tier did not write it): every GET is conditional on
  // its validator instead (fetchAndCommit), so a replaced object is 'Changed', never mixed.
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
  if (e.sumsLoading) return e.sumsLoading.catch(() => loadSums(e, env));
  return loadSums(e, env);
}

/** Shared by concurrent chunk fetches; not cached on failure, so a later event tries again. */
function loadSums(e: InodeEntry, env: FillEnv): Promise<Buffer> {
  e.sumsLoading ??= fetchChunkSums(env.tier, e.copy, env.tuning.timeoutMs)
    .then((b) => (e.sums = b))
    .finally(() => (e.sumsLoading = undefined));
  return e.sumsLoading;
}

/** Fetches chunk i (shared with any concurrent reader of it) and makes it durable. */
export function fillChunk(e: InodeEntry, i: number, ref: FdRef, env: FillEnv): Promise<void> {
  const running = e.fetching.get(i);
  if (running) return running;
  ref.retain();
  const p = env.sem
    .run(() => fetchAndCommit(e, i, ref.fd, env))
    .finally(() => {
      e.fetching.delete(i);
      ref.release();
    });
  e.fetching.set(i, p);
  return p;
}

async function fetchAndCommit(e: InodeEntry, i: number, fd: number, env: FillEnv): Promise<void> {
  if (e.resident.has(i)) return;
  const b = chunkBytes(i, e.copy.chunk, e.copy.size);
  const want = b.end - b.start;
  const [sums, data] = await Promise.all([chunkSums(e, env), getWithTimeout(env.tier, e.copy.key, b.start, want, env.tuning.timeoutMs, e.copy.foreign)]);
  if (data.length !== want) {
    throw new TierError('ShortObject', 'get', env.tier.name, e.copy.key, `range ${b.start}+${want} returned ${data.length} bytes`);
  }
  // A replaced or corrupt object gives EIO, never wrong bytes (test/reliability/tier-faults.test.ts):
  // every chunk is checked against its sum; a record without sums (older versions) can
  // only check a GET of the whole object against the file's SHA-256.
  const digest = createHash('sha256').update(data).digest();
  if (sums) {
    if (!digest.equals(sums.subarray(i * SUM_LEN, (i + 1) * SUM_LEN))) {
      throw new TierError('Corrupt', 'get', env.tier.name, e.copy.key, `SHA-256 of chunk ${i} (range ${b.start}+${want}) differs from its sum`);
    }
  } else if (b.start === 0 && want === e.copy.size && e.copy.sha256 && digest.toString('hex') !== e.copy.sha256) {
    throw new TierError('Corrupt', 'get', env.tier.name, e.copy.key, `SHA-256 of the object differs from the file's record`);
  }
  env.onBytes(data.length);
  if (e.resident.has(i)) return; // filled meanwhile by a whole-file pass
  // Commit: nothing below awaits until the mtime is restored.
  const st = fstatSync(fd, { bigint: true });
  if (Number(st.size) !== e.expect.size || st.mtimeNs !== e.expect.mtimeNs) {
    throw new StaleFileError(`file changed during recall (size ${st.size}, mtime ${st.mtimeNs})`);
  }
  // Never extend a file that was truncated: write only what lies below its size.
  const len = Math.min(want, e.expect.size - b.start);
  let off = 0;
  try {
    while (off < len) off += writeSync(fd, data, off, len - off, b.start + off);
  } finally {
    // Also after a short write (ENOSPC): the user's mtime must never become our write time.
    futimens(fd, { sec: 0, nsec: UTIME_OMIT }, mtimeSpec(e.expect.mtimeNs));
  }
  await fdatasync(fd);
  e.resident.set(i);
  try {
    persistResident(fd, e);
  } catch (err) {
    // A bit only in memory would let a write into this chunk through while the disk map
    // says missing: a later fill (or partial re-release) would put the copy's bytes over it.
    e.resident.clear(i);
    throw err;
  }
}

export const mtimeSpec = nsToTimespec;
