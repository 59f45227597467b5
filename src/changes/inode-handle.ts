// Is a catalog row's inode still alive, whatever its names are now? The row's file handle
// (catalog `handle`, written by the engine from its fd) answers without a path: a name the
// row stored may hold another file now (`mv c a`) while the inode lives on under a hard
// link outside the fileset roots, where no scan looks. Reconcile and gc ask before they
// treat a row as a deleted file (docs/operations.md "Garbage collection").
//
// open_by_handle_at(O_PATH) through change-fs.ts: no fanotify event (no recall), no lease
// break. The mount fd of a row's filesystem is found by its st_dev among the roots given.
import { closeSync, fstatSync, openSync, constants } from 'node:fs';
import type { CatalogRow } from '../engine/catalog.js';
import { fileHandleOfFd } from '../kernel/libc.js';
import { closeWatchedFs, openWatchedFs, resolveHandle, type WatchedFs } from './change-fs.js';

/**
 * - `unknown`: no handle (an older row) or no root on its filesystem: decide as before;
 * - `gone`: no such inode any more, or no name left (nlink 0);
 * - `alive`: `names` when its record still names the row's tier+key; `path` its current
 *   name (null for a disconnected dentry); `holes`: its record says released/partial;
 * - `unsure`: the probe failed (EIO, EACCES...): treat as alive, deleting cannot be undone.
 */
export type Liveness =
  | { kind: 'unknown' }
  | { kind: 'gone' }
  | { kind: 'alive'; names: boolean; path: string | null; holes: boolean }
  | { kind: 'unsure'; error: string };

export type ProbedRow = Pick<CatalogRow, 'dev' | 'ino' | 'tier' | 'key'> & { handle?: Buffer | null };

export class InodeProbe {
  private readonly fss = new Map<number, WatchedFs>();

  /** Opens one mount fd per filesystem of `roots` (unreadable roots are skipped: unknown). */
  constructor(roots: Iterable<string>) {
    for (const root of roots) {
      let w: WatchedFs;
      try {
        w = openWatchedFs(root);
      } catch {
        continue;
      }
      if (this.fss.has(w.dev)) closeWatchedFs(w);
      else this.fss.set(w.dev, w);
    }
  }

  inodeAlive(row: ProbedRow): Liveness {
    const w = row.handle && row.handle.length >= 8 ? this.fss.get(row.dev) : undefined;
    if (!w || !row.handle) return { kind: 'unknown' };
    try {
      const r = resolveHandle(w, { fsid: w.fsid, handle: row.handle, type: row.handle.readInt32LE(4) }, true);
      if (r.gone) return { kind: 'gone' };
      // The handle carries the generation: another inode is not expected; if so, decide as before.
      if (r.dev !== row.dev || r.ino !== row.ino) return { kind: 'unknown' };
      const names = row.tier !== null && row.key !== null && r.record?.copy?.tier === row.tier && r.record.copy.key === row.key;
      const holes = r.record?.state === 'released' || r.record?.state === 'partial';
      return { kind: 'alive', names, path: r.path, holes };
    } catch (e) {
      return { kind: 'unsure', error: (e as Error).message };
    }
  }

  close(): void {
    for (const w of this.fss.values()) closeWatchedFs(w);
    this.fss.clear();
  }
}

const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;

/**
 * The handle of the file at `path` if it is still inode dev:ino (null otherwise, or when
 * there is none). O_PATH: no recall of a released file, no lease broken.
 */
export function handleAt(path: string, dev: number, ino: number): Buffer | null {
  let fd: number;
  try {
    fd = openSync(path, O_PATH | constants.O_NOFOLLOW | O_CLOEXEC);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    return st.dev === dev && st.ino === ino ? fileHandleOfFd(fd) : null;
  } finally {
    closeSync(fd);
  }
}
