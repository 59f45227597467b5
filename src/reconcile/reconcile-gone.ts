// The end of a reconcile pass: catalog rows whose inode the scan did not find. A row is
// marked deleted (its copy's retention starts: gc) or, without a copy, removed -- unless
// its path still holds the inode (a file created behind the walker), or its file handle
// shows the inode alive under another name with its record still naming the row's copy
// (a hard link outside the roots kept it when a rename replaced the row's name while
// nobody watched): the row then moves there. A living inode is never marked deleted.
import { lstatSync } from 'node:fs';
import { sep } from 'node:path';
import type { CatalogRow } from '../engine/catalog.js';
import type { Logger } from '../log.js';
import { InodeProbe } from '../changes/inode-handle.js';
import type { ReconcileCatalog, ReconcileDeps, ReconcileResult } from './reconcile-types.js';
import { atInFilesets } from '../kernel/beneath.js';
import type { InodeSet } from './inode-set.js';

const under = (p: string, root: string) => p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);

/**
 * Rows under a completely scanned root whose inode the scan did not find and whose path
 * no longer holds it. A row written after the pass began (a file created and released
 * behind the walker) is left alone: its path still holds its inode.
 */
export async function removeGone(cat: ReconcileCatalog, roots: string[], devs: Set<number>, seen: InodeSet, r: ReconcileResult, write: boolean, now: number, deps: ReconcileDeps): Promise<void> {
  const gone: CatalogRow[] = [];
  for (const row of cat.all()) {
    if (row.deletedAt != null) continue; // already deleted: its retention runs
    if (!devs.has(row.dev) || seen.has(row.dev, row.ino) || !roots.some((root) => under(row.path, root))) continue;
    gone.push(row); // collected first: no writes while the catalog is being iterated
  }
  const probe = gone.some((row) => row.handle) ? new InodeProbe(roots) : null;
  const toMark: { path: string; dev: number; ino: number }[] = [];
  try {
    // No await in this loop: `gone` is a snapshot, and the engine (same thread in the
    // daemon) must not write rows between a check and the write it justifies.
    for (const row of gone) {
      if (holds(row, roots)) continue;
      if (probe && livesOn(probe, cat, row, r, write, deps.log, toMark)) continue;
      r.rows.removed++;
      if (!write) continue;
      if (row.key) cat.markDeleted(row.dev, row.ino, now);
      else cat.remove(row.dev, row.ino);
    }
  } finally {
    probe?.close();
  }
  // Start-up marking went by the rows' old names: these inodes may carry no mark, and a
  // reader of their holes would get zeros. The daemon marks them now (by path, record checked).
  for (const { path, dev, ino } of deps.onReleasedFound ? toMark : []) {
    await deps.onReleasedFound!(path, { dev, ino }).catch((e: unknown) => deps.log.warn('reconcile: marking a released file failed', { op: 'mark', path, err: e }));
  }
}

/**
 * True when the row's inode lives on (its handle opens, nlink > 0) with its record naming
 * the row's copy: the row follows it to its current name (a hard link the scan does not
 * see), or, when the probe failed or the inode has no path, stays as it is.
 */
function livesOn(probe: InodeProbe, cat: ReconcileCatalog, row: CatalogRow, r: ReconcileResult, write: boolean, log: Logger, toMark: { path: string; dev: number; ino: number }[]): boolean {
  const l = probe.inodeAlive(row);
  const fields = { op: 'reconcile', path: row.path, tier: row.tier ?? undefined, key: row.key ?? undefined };
  if (l.kind === 'unsure') {
    log.warn('reconcile: cannot tell whether the file lives on under another name: row kept', { ...fields, error: l.error });
    r.skipped.push({ path: row.path, why: `row kept: its inode could not be checked (${l.error})` });
    return true;
  }
  if (l.kind !== 'alive' || !l.names) return false;
  if (l.path === null) {
    r.skipped.push({ path: row.path, why: 'row kept: its inode lives on, under a name not known yet' });
    return true;
  }
  r.rows.updated++;
  if (write) cat.renamePath?.(row.dev, row.ino, l.path);
  log.info('managed file lost the name its row had and lives on elsewhere: row moved', { ...fields, path: l.path, from: row.path });
  if (write && l.holes) toMark.push({ path: l.path, dev: row.dev, ino: row.ino });
  return true;
}

function holds(row: CatalogRow, roots: string[]): boolean {
  try {
    const st = atInFilesets(row.path, roots, (at) => lstatSync(at)); // no symlink (kernel/beneath.ts)
    return st.dev === row.dev && st.ino === row.ino;
  } catch {
    return false;
  }
}
