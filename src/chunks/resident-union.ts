// Which chunks of a partial file the stale-copy guard must treat as resident
// (release-partial.ts). Two witnesses: the on-disk bitmap (trusted.tier.resident) and the
// recall service's in-memory map of the inode. recall/fill.ts sets a chunk's bit in memory
// once its bytes are durable, then stores the bitmap; when that store fails (xattr error,
// ENOSPC or a map too big: recall/inode.ts persistResident) only memory has the bit, and
// the handler allows writes into that chunk without a fetch. The disk bitmap then calls a
// chunk missing that may hold a user's bytes. Pure.
//
// The union, not 'busy': a chunk can hold bytes other than the copy's only after the
// handler allowed a write into it, which requires its bit in memory (a missing chunk is
// filled first), and bits are only ever added while the entry is cached; chunks resident
// from an earlier daemon are in the disk bitmap. So every chunk outside the union still
// holds the copy's bytes or a hole, and:
//   - hashing every chunk of the union finds any write either witness could know of;
//   - filling only chunks outside the union never writes over a user's byte.
// 'busy' would only wait: the memory witness goes with a restart or cache eviction, after
// which the disk bitmap alone would decide, as before. Verifying now uses it while it exists.
// A diverged entry (the service saw a write or truncate) is left to the service, which
// recalls the rest and records the file dirty.
import { ResidentMap } from './resident.js';

/** What the engine may see of a cached entry (recall/inode.ts cachedResident): copies, never the live map. */
export interface CachedResident {
  bits: Buffer;
  /** The file was written or truncated since release: the service recalls the rest. */
  diverged: boolean;
  /** The map could not be stored: the on-disk bitmap lags behind `bits`. */
  unstorable: boolean;
}

export type ResidentView = { ok: true; map: ResidentMap; memoryOnly: number[] } | { ok: false; why: string };

export function residentToVerify(chunks: number, disk: Buffer | null, cached: CachedResident | null): ResidentView {
  const onDisk = ResidentMap.fromStored(chunks, disk);
  if (!cached) return { ok: true, map: onDisk, memoryOnly: [] };
  if (cached.diverged) return { ok: false, why: 'partially recalled and written since (the recall service is completing it; it becomes dirty): next run' };
  const inMemory = new ResidentMap(chunks, cached.bits);
  const map = ResidentMap.fromStored(chunks, disk);
  const memoryOnly: number[] = [];
  for (let i = 0; i < chunks; i++) {
    if (inMemory.has(i) && !onDisk.has(i)) {
      map.set(i);
      memoryOnly.push(i);
    }
  }
  return { ok: true, map, memoryOnly };
}
