// The shapes gc takes and returns (src/gc/gc.ts), apart so that gc.ts and gc-living.ts,
// which both use them, need not import each other. Types only.
import type { Tier } from '../tiers/tier.js';
import type { Logger } from '../log.js';

export interface GcOptions {
  tiers: Map<string, Tier>;
  /** Retention per tier name, ms. */
  keepDeleted: Map<string, number>;
  catalogRefs: Iterable<CatalogRef>;
  roots: string[];
  stateDir: string;
  now: number;
  dryRun: boolean;
  log?: Logger;
}

export interface CatalogRef {
  tier: string | null;
  key: string | null;
  path?: string;
  dev?: number;
  ino?: number;
  /** Set when change tracking saw the file deleted (ms). */
  deletedAt?: number | null;
  /** The inode's file handle (catalog `handle`); absent on older rows. */
  handle?: Buffer | null;
  /** An imported object (tier import): never deleted, whatever became of its file. */
  foreign?: boolean;
}

export type OrphanFate = 'deleted' | 'would delete' | 'kept: retention' | 'kept: scan incomplete' | 'delete failed';

export interface GcTierResult {
  tier: string;
  listed: number;
  referenced: number;
  foreign: number;
  orphans: { key: string; size: number; firstSeen: number; fate: OrphanFate; error?: string }[];
  error?: string;
}

export interface GcResult {
  tiers: GcTierResult[];
  scanErrors: { path: string; op: string; error: string }[];
  deleted: number;
  deletedBytes: number;
  /**
   * Deleted files' catalog rows whose object is gone now: the caller may drop them, but
   * only while the row is still deleted and names this key (Catalog.forgetDeleted): the
   * inode number may have been reused by a file released during the run.
   */
  forget: { dev: number; ino: number; key: string }[];
  /** Rows whose inode lives on under `path`, its record naming the row's copy: the caller revives them (Catalog.reviveAt). */
  revive: Revive[];
}

export interface Revive {
  dev: number;
  ino: number;
  path: string;
  tier: string;
  key: string;
}
