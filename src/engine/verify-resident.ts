// The stale-copy guard for partially recalled files (release-partial.ts). Size and mtime
// do not prove a partial file's resident chunks still hold the copy's bytes: a write over
// a resident chunk raises an event that needs no fetch (the handler allows it), and mtime
// can be put back (touch -d, touch -r). ctime cannot prove it either: the recall
// service's own fills move it and record no ctime. So every resident chunk is hashed and
// compared with the copy's per-chunk sums before anything is punched.
//
// Invariants:
// - reads and writes go through the caller's no-notify fd, under its lease: no event, no
//   second open;
// - the sums object is checked against the record's sumsSha (as recall/fill.ts does); a
//   copy made before sums existed is compared chunk by chunk with ranged GETs;
// - fillMissing writes only chunks both the bitmap and the recall service's memory call
//   missing (chunks/resident-union.ts; holes: only the copy's bytes belong there), each verified
//   against its sum first (a copy without sums is never filled: release-partial.ts), each
//   with a synchronous pwrite right after `mayWrite()` said yes (the SIGIO listener that
//   gives the lease up cannot run between) and futimens back to the user's mtime in the
//   same tick (a failure or kill -9 later never leaves our write time as the file's mtime).
import { createHash } from 'node:crypto';
import { read, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { fetchChunkSums, fetchCopyChunk } from '../chunks/copy-chunk.js';
import { piecesOf, sumOf, type CopyIndex } from '../chunks/extent-map.js';
import { chunkBytes } from '../chunks/ranges.js';
import { futimens, nsToTimespec, UTIME_OMIT } from '../kernel/libc.js';
import type { ResidentMap } from '../chunks/resident.js';
import type { Tier } from '../tiers/tier.js';
import type { StateRecord } from './state-record.js';
import { faultPoint } from './fault.js';

const preadAsync = promisify(read);

type Copy = NonNullable<StateRecord['copy']>;

export interface CopySource {
  tier: Tier;
  copy: Copy;
  timeoutMs: number;
  signal: AbortSignal;
}

/** The copy's per-chunk SHA-256 sums (and data map), verified against the record; null for a copy without sums. */
export async function copySums(s: CopySource): Promise<CopyIndex | null> {
  return s.copy.sumsSha ? fetchChunkSums(s.tier, s.copy, s.timeoutMs) : null;
}

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

/** The copy's logical bytes of chunk i (zeros in its holes), checked against its sum when there are sums. */
async function copyChunk(s: CopySource, sums: CopyIndex | null, i: number) {
  return fetchCopyChunk(s.tier, s.copy, sums, i, s.timeoutMs);
}

/** Chunk i's expected SHA-256: its sum; an all-hole chunk of a sparse copy has none (zeros). */
async function wantedSum(s: CopySource, sums: CopyIndex | null, i: number, len: number): Promise<Buffer> {
  if (!sums) return sha((await copyChunk(s, null, i)).data);
  return sumOf(sums, i) ?? sha(Buffer.alloc(len));
}

/** Index of the first resident chunk whose local bytes differ from the copy's; null: all equal. */
export async function firstStaleChunk(fd: number, resident: ResidentMap, s: CopySource, sums: CopyIndex | null): Promise<number | null> {
  const buf = Buffer.allocUnsafe(s.copy.chunk);
  for (let i = 0; i < resident.chunks; i++) {
    if (!resident.has(i)) continue;
    s.signal.throwIfAborted();
    const b = chunkBytes(i, s.copy.chunk, s.copy.size);
    const len = b.end - b.start;
    let got = 0;
    while (got < len) {
      const { bytesRead } = await preadAsync(fd, buf, got, len - got, b.start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got !== len) return i; // shorter than the copy: not the copy's bytes
    const local = sha(buf.subarray(0, len));
    const want = await wantedSum(s, sums, i, len);
    if (!local.equals(want)) return i;
  }
  return null;
}

/** Bytes of the chunks `resident` calls missing, each rounded up to whole `block`s: what filling them allocates (a sparse copy: its data pieces only). */
export function missingBytes(resident: ResidentMap, copy: Copy, block: number, sums: CopyIndex | null = null): number {
  let n = 0;
  const up = (len: number) => Math.ceil(len / block) * block;
  for (let i = 0; i < resident.chunks; i++) {
    if (resident.has(i)) continue;
    const b = chunkBytes(i, copy.chunk, copy.size);
    if (!sums?.map) n += up(b.end - b.start);
    else if (sumOf(sums, i)) for (const p of piecesOf(sums.map, b.start, b.end)) if (p.kind === 'data') n += up(p.len);
  }
  return n;
}

/**
 * Writes every chunk `resident` calls missing from the copy (verified) through `fd`.
 * Stops with an error when `mayWrite()` turns false (lease broken). Each write is followed
 * in the same tick by futimens back to `mtimeNs` (as recall/fill.ts does), also when it
 * fails part-way (ENOSPC): whatever stops the fill, the file keeps its user's mtime.
 * Returns bytes written; the caller fdatasyncs.
 */
export async function fillMissing(fd: number, resident: ResidentMap, s: CopySource, sums: CopyIndex | null, mayWrite: () => boolean, mtimeNs: bigint): Promise<number> {
  let written = 0;
  for (let i = 0; i < resident.chunks; i++) {
    if (resident.has(i)) continue;
    s.signal.throwIfAborted();
    const { data, pieces } = await copyChunk(s, sums, i);
    if (!mayWrite()) throw new Error('lease broken: another process opened the file');
    const at = chunkBytes(i, s.copy.chunk, s.copy.size).start;
    // Nothing below awaits until the mtime is back. Only the copy's data: its holes stay holes.
    try {
      for (const p of pieces) {
        for (let off = 0; off < p.len; ) off += writeSync(fd, data, p.at - at + off, p.len - off, p.at + off);
        written += p.len;
      }
    } finally {
      futimens(fd, { sec: 0, nsec: UTIME_OMIT }, nsToTimespec(mtimeNs));
    }
    faultPoint('partial-after-fill-chunk');
  }
  return written;
}
