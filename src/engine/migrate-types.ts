// What the archive/release code shares: the caller's dependencies (tiers, catalog, the
// recall service's marking), the outcome of one file, and how an early stop is said.
// Types and tiny helpers only: execute.ts, migrate-file.ts and release-partial.ts all
// import this module and none of them imports another's internals (no import circle).
import type { Tier } from '../tiers/tier.js';
import type { CachedResident } from '../chunks/resident-union.js';
import type { Catalog } from './catalog.js';
import type { Logger } from '../log.js';
import type { Expected } from '../kernel/beneath.js';

/**
 * The recall service's marking (the daemon's RecallService has markReleased/unmark).
 * markPreLease, when given, adds only the pre-content part (FAN_PRE_ACCESS) before the
 * lease, and markReleased completes the mark after the punch, still under the lease.
 * Measured: with FAN_OPEN_PERM on the inode while we hold the lease, an opener's
 * open-time event cannot get its event fd (the open conflicts with the lease) and the
 * opener gets EPERM; with FAN_PRE_ACCESS alone it waits, we abort, and it reads normally.
 */
export interface Marker {
  markReleased(fd: number): void | Promise<void>;
  unmark(fd: number): void | Promise<void>;
  markPreLease?(fd: number): void | Promise<void>;
  /** Removes any mark on the inode (none: no error). Called only on files whose data is all local (open-unmarked.ts). */
  clearMark?(fd: number): void | Promise<void>;
  /** The recall service's no-notify access, to re-release partial files (release-partial.ts). */
  noNotify?: NoNotifyAccess;
  /** Any open may raise an event our own handler answers (a filesystem mark): opens go through withMarkedIo. */
  opensWait?(): boolean;
  /** A filesystem mark covers the inode (recall/marks.ts): the release works through a no-notify fd. */
  underFilesystemMark?(fd: number): boolean;
  /** The lease is held (release): under a filesystem mark, any ignore mark comes off. */
  leased?(fd: number): void | Promise<void>;
}

/** What release-partial.ts needs from the recall service (RecallService has it); ids are dev:ino. */
export interface NoNotifyAccess {
  /** Dups the event fd of this process's next FAN_OPEN_PERM on the inode (`fd` is set before the open returns); null: one is pending. */
  captureOwnOpen(id: string): { fd: number | null; cancel(): void } | null;
  /** Chunk fetches under way for the inode. */
  fetching(id: string): boolean;
  /** Drops the cached per-inode state (its resident map would answer reads over the new holes). */
  forget(id: string): void;
  /** The service's in-memory resident map of the inode (null: not cached); may be ahead of the on-disk bitmap (resident-union.ts). */
  cachedResident(id: string): CachedResident | null;
  /** Resolves once the service's work on the inode after its answers is done (a completed file recorded). */
  settled?(id: string): Promise<void>;
}

export interface ExecDeps {
  /**
   * The fileset roots a path given without its root (manual actions) must lie beneath;
   * outside all of them it is refused. Absent (library use): no fileset rule, but no
   * symlink is followed in any component either (kernel/beneath.ts).
   */
  roots?: readonly string[];
  tiers: Map<string, Tier>;
  catalog: Catalog | null;
  marker: Marker | null;
  log: Logger;
}

export type OutcomeStatus = 'done' | 'skipped' | 'busy' | 'failed';

export interface Outcome {
  status: OutcomeStatus;
  /** Bytes uploaded (0 when a valid copy existed). */
  uploaded: number;
  /** Blocks freed, in bytes (release). */
  freed: number;
  key?: string;
  message?: string;
}

/** What a planned action knows of its file: the root it was scanned under and the inode seen. */
export interface ScannedTarget extends Expected {
  root: string;
}

export type MigrateMode = 'archive' | 'release';

export const NO_RECALL_SERVICE = 'no recall service running: start `tier daemon`';

/** An outcome with nothing uploaded or freed. */
export const none = (status: OutcomeStatus, message: string): Outcome => ({ status, uploaded: 0, freed: 0, message });

/** A step that ends the file's migration early with this outcome (skipped, busy), thrown so the steps read as a list. */
export class Stop extends Error {
  constructor(readonly outcome: Outcome) {
    super(outcome.message ?? outcome.status);
  }
}
