// Fetching one chunk from its tier and making it durable through an event fd.
//
// Order (crash-safe resident map): ranged GET (bounded by the tier timeout) ->
// re-check the file still has the expected size and mtime -> pwrite -> restore mtime
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
export async function getWithTimeout(tier: Tier, key: string, offset: number, length: number, timeoutMs: number): Promise<Buffer> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort();
      reject(new TierError('Timeout', 'get', tier.name, key, `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([tier.get(key, { offset, length }, ac.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface FillEnv {
  tier: Tier;
  tuning: TierTuning;
  sem: Semaphore;
  onBytes(n: number): void;
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
  const data = await getWithTimeout(env.tier, e.copy.key, b.start, want, env.tuning.timeoutMs);
  if (data.length !== want) {
    throw new TierError('ShortObject', 'get', env.tier.name, e.copy.key, `range ${b.start}+${want} returned ${data.length} bytes`);
  }
  // A GET of the whole object can be checked against the record: a replaced or corrupt
  // object gives EIO, never wrong bytes (test/reliability/tier-faults.test.ts). Chunks of
  // larger files have no checksum of their own to check.
  if (b.start === 0 && want === e.copy.size && e.copy.sha256 && createHash('sha256').update(data).digest('hex') !== e.copy.sha256) {
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
  while (off < len) off += writeSync(fd, data, off, len - off, b.start + off);
  futimens(fd, { sec: 0, nsec: UTIME_OMIT }, mtimeSpec(e.expect.mtimeNs));
  await fdatasync(fd);
  e.resident.set(i);
  persistResident(fd, e);
}

export const mtimeSpec = nsToTimespec;
