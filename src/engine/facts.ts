// What the engine knows about one file: stat facts plus its HSM record. Built by
// scan.ts (I/O), consumed by evaluate.ts and plan.ts (pure). JSON-safe except
// mtimeNs, kept as a decimal string so it survives the daemon socket exactly.
import type { FileState } from '../dsl/ast.js';
import type { StateRecord } from '../record/state-record.js';

export interface FileFacts {
  /** Relative to the fileset root, '/'-separated, no leading './'. */
  path: string;
  absPath: string;
  name: string;
  root: string;
  size: number;
  /** st_blocks (512-byte units): what the file occupies on disk. */
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /** st_ctime in nanoseconds, decimal string (scan.ts sets it; compared with the catalog's). */
  ctimeNs?: string;
  /** Archived, and ctime is not the one the engine recorded (apply.ts, with a catalog): the
   *  copy may be stale, so an archive action goes to execute.ts, which hashes the file. */
  copyUnverified?: boolean;
  /** st_mtime in nanoseconds, decimal string (exact; compared with the record). */
  mtimeNs: string;
  mode: number;
  uid: number;
  gid: number;
  owner: string;
  group: string;
  dev: number;
  ino: number;
  state: FileState;
  pinned: boolean;
  record: StateRecord | null;
}

/** Bytes on disk, capped at size (a fully allocated file may round up past it). */
export function residentBytes(f: Pick<FileFacts, 'size' | 'blocks'>): number {
  return Math.min(f.blocks * 512, f.size);
}

/** Bytes a release would give back to the filesystem. */
export function freedByRelease(f: Pick<FileFacts, 'blocks'>): number {
  return f.blocks * 512;
}

export { deriveState } from '../record/state-record.js';

/** Filesystem usage as df computes it: used / (used + available to users). */
export interface FsUsage {
  dev: number;
  usedBytes: number;
  availBytes: number;
}

export function usagePercent(u: { usedBytes: number; availBytes: number }): number {
  const total = u.usedBytes + u.availBytes;
  return total === 0 ? 0 : (u.usedBytes / total) * 100;
}
