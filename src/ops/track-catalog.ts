// What change tracking's findings do to the catalog (src/engine/catalog.ts): a dirty row,
// a deleted row (kept, with deleted_at, until gc collects its object), a renamed path.
// Each step reads the row first, so a repeated or late event changes nothing.
import { rowFromRecord, type Catalog } from '../engine/catalog.js';
import type { Logger } from '../log.js';
import type { DeletedFile, DirtyFile, RenamedEntry } from './change-events.js';

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

/** A managed file is gone: its row is marked deleted (gc counts its retention from now). */
export function trackDeleted(catalog: Catalog, d: DeletedFile, now: number, log: Logger): void {
  const row = d.ino !== null ? catalog.get(d.dev, d.ino) : d.path !== null ? catalog.rowByPath(d.path) : null;
  if (!row || row.dev !== d.dev || row.deletedAt) return;
  catalog.markDeleted(row.dev, row.ino, now);
  log.info('managed file deleted', { op: 'track', path: row.path, tier: row.tier ?? undefined, key: row.key ?? undefined });
}

/** Rows follow a rename; a managed file the rename replaced is deleted. */
export function trackRenamed(catalog: Catalog, r: RenamedEntry, now: number, log: Logger): void {
  const replaced = r.linkRemoved ? null : catalog.rowByPath(r.to);
  if (replaced && !replaced.deletedAt && !(replaced.dev === r.dev && replaced.ino === r.ino)) {
    catalog.markDeleted(replaced.dev, replaced.ino, now);
    log.info('managed file replaced by a rename: deleted', { op: 'track', path: r.to, tier: replaced.tier ?? undefined, key: replaced.key ?? undefined });
  }
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

