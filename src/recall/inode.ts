// Per-inode recall state, loaded from the event fd's trusted.* xattrs and cached by
// dev:ino, and the writes that keep the xattrs in step with what is on disk.
//
// `expect` is the (size, mtime) the file must still have for missing chunks to be
// filled: the tier copy's values, or, once the file diverged (someone wrote or
// truncated it), the values seen then. Every fill re-checks it just before writing and
// restores mtime to it right after, in the same tick.
import { fstatSync } from 'node:fs';
import { fgetxattr, fremovexattr, fsetxattr } from '../kernel/libc.js';
import { faultPoint } from '../engine/fault.js';
import {
  XATTR_RESIDENT,
  XATTR_STATE,
  chunkCount,
  decodeRecord,
  encodeRecord,
  type StateRecord,
} from '../record/state-record.js';
import type { CopyIndex } from '../chunks/extent-map.js';
import { initialReadahead, type ReadaheadState } from './readahead.js';
import type { SumsCost } from '../chunks/sums-fetch.js';
import { ResidentMap } from '../chunks/resident.js';
import type { CachedResident } from '../chunks/resident-union.js';
export type { CachedResident };

export type Copy = NonNullable<StateRecord['copy']>;

export interface InodeEntry {
  id: string; // dev:ino
  record: StateRecord;
  copy: Copy;
  resident: ResidentMap;
  expect: { size: number; mtimeNs: bigint };
  /**
   * The copy's bytes still wanted are [0, keep): the copy's size, then the least size seen
   * since the file diverged. A truncate drops the copy's bytes past it for good; what is
   * written there later is the user's, even while the completion is still to be recorded.
   */
  keep: number;
  /** The file was written or truncated since release: finish the recall, end 'dirty'. */
  diverged: boolean;
  /** The resident map does not fit in an xattr here (huge file): recall the whole file. */
  mapUnstorable: boolean;
  ra: ReadaheadState;
  /** What its sums GETs cost (sums-fetch.ts SumsCost; null: none), worked out once. */
  sumsCost?: SumsCost | null;
  /** Chunk fetches under way; a second reader of a chunk waits on the first fetch. */
  fetching: Map<number, Promise<void>>;
  /** The copy's per-chunk SHA-256 sums (and a sparse copy's data map), once fetched and verified (fill.ts); a failed fetch is not cached. */
  sums?: CopyIndex;
  /** The loaded bits were checked against the file's data (chunks/fs-resident.ts lostChunks). */
  fsChecked?: boolean;
  /** Chunks whose bit a crash made a lie: re-fetched into their holes only (fill.ts). */
  lost?: Set<number>;
  /** finishIfComplete is syncing the file and then records it complete (one at a time). */
  finishing?: Promise<void>;
  /** Starts its queued completion sync at once (an open waits for it: sync-queue.ts). */
  syncNow?: () => void;
  /** Work on this inode that outlives an answer (read-ahead, hashing, completion): RecallHandler.settled. */
  after?: Set<Promise<void>>;
  sumsLoading?: Promise<CopyIndex>;
  /** An imported copy being hashed once whole (foreign-hash.ts); hashed: tried, done or not. */
  hashing?: boolean;
  hashed?: boolean;
  /** The rest of the file was asked for once at least half of it was here (handler.ts restWanted). */
  rest?: boolean;
  /** Granted to the event thread (fast-path.ts) with this many resident bits; undefined: not granted. */
  granted?: number;
}

export function cachedResident(e: InodeEntry): CachedResident {
  return { bits: e.resident.toBuffer(), diverged: e.diverged, unstorable: e.mapUnstorable };
}

export type Loaded =
  | { kind: 'recall'; entry: InodeEntry }
  | { kind: 'plain'; record: StateRecord | null } // nothing to recall: allow, unmark
  | { kind: 'broken'; why: string }; // released without a usable copy: never allow

export function inodeId(fd: number): string {
  const st = fstatSync(fd, { bigint: true });
  return `${st.dev}:${st.ino}`;
}

/** Why a released or partial record cannot be recalled from (null: it can); pure. */
export function copyProblem(record: StateRecord): string | null {
  const copy = record.copy;
  if (!copy || !(copy.chunk > 0) || typeof copy.mtimeNs !== 'string') return `state ${record.state} without a usable copy record`;
  try {
    BigInt(copy.mtimeNs);
  } catch {
    return `bad mtimeNs ${JSON.stringify(copy.mtimeNs)}`;
  }
  return null;
}

/** Reads the record of the file behind `fd` (no cache). */
export function loadEntry(fd: number, id: string): Loaded {
  const record = decodeRecord(fgetxattr(fd, XATTR_STATE));
  if (!record || (record.state !== 'released' && record.state !== 'partial')) return { kind: 'plain', record };
  const why = copyProblem(record);
  if (why !== null) return { kind: 'broken', why };
  const copy = record.copy!;
  const mtimeNs = BigInt(copy.mtimeNs);
  const n = chunkCount(copy.size, copy.chunk);
  // 'released' means nothing is resident, whatever a stale bitmap says.
  const bits = record.state === 'partial' ? fgetxattr(fd, XATTR_RESIDENT) : null;
  return {
    kind: 'recall',
    entry: {
      id,
      record,
      copy,
      resident: ResidentMap.fromStored(n, bits),
      expect: { size: copy.size, mtimeNs },
      keep: copy.size,
      diverged: false,
      mapUnstorable: false,
      ra: initialReadahead(),
      fetching: new Map(),
    },
  };
}

/**
 * Persists the resident map (after a chunk became durable); 'released' turns 'partial'.
 * Returns false when the map cannot be stored (too big for an xattr on this filesystem):
 * the entry is then recalled whole, and a crash before the end just fetches it again.
 */
export function persistResident(fd: number, e: InodeEntry): boolean {
  if (e.mapUnstorable) return false;
  faultPoint('persist-resident'); // FAULT INJECTION (tests): an xattr error, the bit in memory only
  try {
    // Bitmap first: a 'partial' record never points at a map that is missing.
    fsetxattr(fd, XATTR_RESIDENT, e.resident.toStored()); // run-length form when shorter (chunks/resident.ts)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'E2BIG' && code !== 'ERANGE') throw err;
    e.mapUnstorable = true;
    return false;
  }
  if (e.record.state === 'released') {
    e.record = { ...e.record, state: 'partial' };
    fsetxattr(fd, XATTR_STATE, encodeRecord(e.record));
  }
  return true;
}

/** All data is local: 'archived' (copy still valid) or 'dirty' (file diverged). */
export function persistComplete(fd: number, e: InodeEntry): void {
  e.record = { ...e.record, state: e.diverged ? 'dirty' : 'archived' };
  fsetxattr(fd, XATTR_STATE, encodeRecord(e.record));
  fremovexattr(fd, XATTR_RESIDENT);
}
