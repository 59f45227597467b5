// What change tracking's findings do to the catalog (src/engine/catalog.ts): a dirty row,
// a deleted row (kept, with deleted_at, until gc collects its object), a renamed path.
// Each step reads the row first, so a repeated or late event changes nothing.
//
// Inode numbers are reused: an event about an inode says nothing about a newer file that
// got the same number. Before a row is marked deleted or moved, the file system is asked
// what lives at the row's path now (lstat + record), so a row that belongs to a living
// file is left alone.
import { lstatSync } from 'node:fs';
import { rowFromRecord, type Catalog, type CatalogRow } from '../engine/catalog.js';
import { lgetxattr } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../engine/state-record.js';
import type { Logger } from '../log.js';
import type { DeletedFile, DirtyFile, LiveFile, RenamedEntry } from './change-events.js';
import { atBeneath } from '../kernel/beneath.js';

/** An archived file was written: its row turns dirty. False when it was known dirty already (a writer still going). */
export function trackDirty(catalog: Catalog, f: DirtyFile, now: number, log: Logger): boolean {
  const known = catalog.get(f.dev, f.ino);
  if (known?.state === 'dirty' && known.key === (f.record.copy?.key ?? null) && !known.deletedAt) return false;
  const row = rowFromRecord({ dev: f.dev, ino: f.ino, absPath: f.path, size: f.size }, f.record, 'dirty', now);
  if (!row) return false;
  catalog.upsert(row);
  log.info('archived file changed: dirty', { op: 'track', path: f.path, tier: f.record.copy?.tier, key: f.record.copy?.key });
  return true;
}

/**
 * A managed file is gone: its row is marked deleted (gc counts its retention from now).
 * Not when the row belongs to a living file: the inode at the row's path has the row's
 * inode number and a record naming the row's copy. The event's handle no longer resolves,
 * so that file is a newer one that reused the number (and was archived or released since,
 * which rewrote the row); the late event is about its predecessor, whose row is gone.
 */
export function trackDeleted(catalog: Catalog, d: DeletedFile, now: number, log: Logger, fs: TrackFs = realFs): void {
  const row = d.ino !== null ? catalog.get(d.dev, d.ino) : d.path !== null ? catalog.rowByPath(d.path) : null;
  if (!row || row.dev !== d.dev || row.deletedAt) return;
  if (fs.holds(row.path, row.dev, row.ino) && row.key !== null && fs.keyAt(row.path) === row.key) {
    log.debug('delete event of an earlier file with this inode number: row kept', { op: 'track', path: row.path, key: row.key });
    return;
  }
  catalog.markDeleted(row.dev, row.ino, now);
  log.info('managed file deleted', { op: 'track', path: row.path, tier: row.tier ?? undefined, key: row.key ?? undefined });
}

/**
 * Rows follow a rename. A file the rename replaced is not touched here: with hard links
 * it may live on under another name; the kernel reports the replaced inode's link-count
 * change (FAN_ATTRIB), and change-events.ts decides from that: gone (trackDeleted) or
 * alive somewhere (trackAlive).
 */
export function trackRenamed(catalog: Catalog, r: RenamedEntry, _now: number, log: Logger): void {
  if (r.dir) {
    if (r.from === null) return;
    const n = catalog.renamePrefix(r.from, r.to);
    if (n > 0) log.info('managed directory renamed', { op: 'track', path: r.to, from: r.from, files: n });
    return;
  }
  const row = r.ino !== null ? catalog.get(r.dev, r.ino) : r.from !== null ? catalog.rowByPath(r.from) : null;
  if (!row || row.dev !== r.dev || row.path === r.to) return;
  if (r.linkRemoved && row.path !== r.from) return; // its row names another link, still there
  catalog.renamePath(row.dev, row.ino, r.to);
  log.info(r.linkRemoved ? 'hard link removed: row moved to a remaining name' : 'managed file renamed', { op: 'track', path: r.to, from: row.path });
}

/**
 * A managed inode is alive at `f.path`. When its live row names a path that no longer
 * holds it (a rename replaced that name of a hard-linked file), the row moves to
 * `f.path`, checked to hold the inode now: start-up marking opens rows by path, and gc
 * counts a row whose path is gone as no reference. Returns true when the row moved.
 */
export function trackAlive(catalog: Catalog, f: LiveFile, log: Logger, fs: TrackFs = realFs): boolean {
  const row: CatalogRow | null = catalog.get(f.dev, f.ino);
  if (!row || row.deletedAt || row.path === f.path) return false;
  if (fs.holds(row.path, f.dev, f.ino) || !fs.holds(f.path, f.dev, f.ino)) return false;
  catalog.renamePath(f.dev, f.ino, f.path);
  log.info('managed file lost the name its row had: row moved to a remaining name', { op: 'track', path: f.path, from: row.path, key: row.key ?? undefined });
  return true;
}

/** The two questions asked of the file system (an interface so the rules can be read apart from the I/O). */
export interface TrackFs {
  /** `path` is this inode now. */
  holds(path: string, dev: number, ino: number): boolean;
  /** The copy key the record at `path` names; null when none or unreadable. */
  keyAt(path: string): string | null;
}

export const realFs: TrackFs = {
  holds(path, dev, ino) {
    try {
      const st = atBeneath(path, null, (at) => lstatSync(at)); // no symlink in any component (kernel/beneath.ts)
      return st.isFile() && st.dev === dev && st.ino === ino;
    } catch {
      return false;
    }
  },
  keyAt(path) {
    try {
      return decodeRecord(atBeneath(path, null, (at) => lgetxattr(at, XATTR_STATE)))?.copy?.key ?? null;
    } catch {
      return null;
    }
  },
};
