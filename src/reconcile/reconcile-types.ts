// The shapes reconcile takes and returns (src/reconcile/reconcile.ts), apart so that
// reconcile.ts and reconcile-gone.ts, which both use them, need not import each other.
import type { CatalogRow } from '../engine/catalog.js';
import type { Logger } from '../log.js';

/** The catalog calls reconcile makes (Catalog has them; a dry run gets a read-only view). */
export interface ReconcileCatalog {
  get(dev: number, ino: number): CatalogRow | null;
  ctimeOf(dev: number, ino: number): string | null;
  all(): Iterable<CatalogRow>;
  upsert(row: CatalogRow): void;
  remove(dev: number, ino: number): void;
  /** Starts the row's keep_deleted retention (gc collects its object after it). */
  markDeleted(dev: number, ino: number, now: number): boolean;
  setCtime(dev: number, ino: number, ctimeNs: string | null): void;
  /** Optional (older callers): without them rows get no handle and a living inode's row is only kept. */
  setHandle?(dev: number, ino: number, handle: Buffer): void;
  renamePath?(dev: number, ino: number, to: string): boolean;
}

export interface ReconcileOptions {
  roots: string[];
  dryRun: boolean;
  /** Hash archived files whose ctime moved (the record's SHA-256 is the reference). */
  hash: boolean;
  /** Files larger than this are not hashed (left to the release guard); absent: no cap. */
  hashMaxBytes?: number;
  signal?: AbortSignal;
  now?: number;
  /**
   * True while the engine is migrating: files are then not hashed (left to the next pass).
   * A hash holds the file open, and the engine's lease would fail on it: its release 'busy'.
   */
  yieldTo?: () => boolean;
}

export interface ReconcileDeps {
  catalog: ReconcileCatalog | null;
  log: Logger;
  /** A released/partial file the catalog did not list at this path (the daemon marks it). */
  /** `expect`: the inode reconcile found there; the daemon marks it only if the path still leads to it. */
  onReleasedFound?(absPath: string, expect?: { dev: number; ino: number }): Promise<void>;
}

export type DirtyHow = 'size/mtime' | 'hash';

export interface ReconcileResult {
  dryRun: boolean;
  /** Files with a record. */
  checked: number;
  /** Archived files found dirty that the catalog did not list as dirty. */
  dirty: { bySizeMtime: number; byHash: number; files: { path: string; how: DirtyHow }[] };
  /** Archived files whose ctime differs from the catalog's (or none recorded), and not hashed. */
  unverified: number;
  hashed: { files: number; bytes: number };
  /** Files left for the next pass: busy, or changed while looked at. */
  skipped: { path: string; why: string }[];
  rows: { added: number; updated: number; removed: number };
  scanErrors: { path: string; op: string; error: string }[];
}
