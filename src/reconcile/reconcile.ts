// Reconciliation: what changed while nobody watched (daemon down, change-tracker queue
// overflow, writers it cannot see). Walks the fileset roots and, for every file with a
// record, compares the record with stat (deriveState: size, mtime) and with its catalog
// row (path, state, copy, size, ctime). With `hash`, an archived file whose ctime moved
// since the catalog last vouched for it is hashed (reconcile-hash.ts): a mismatch makes it
// 'dirty' (record and row), a match records the ctime. Rows are added or refreshed (path =
// where the scan found the inode: renames; with the inode's file handle); rows of inodes
// gone from the roots are marked deleted (their copy's retention starts: gc) or, without a
// copy, removed -- unless the row's handle shows the inode alive elsewhere with its record
// still naming the copy (a hard link outside the roots): the row then moves to that name.
//
// Invariants:
// - a dry run writes nothing: no xattr, no catalog row;
// - only 'archived' files are ever opened (released/partial ones are marked: reading
//   them would recall them);
// - rows are removed only after a complete scan of their root (an unreadable directory
//   could hide the file), and only on the filesystem of a scanned root;
// - a row whose handle shows a living inode naming its copy is never marked deleted.
import { lstatSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { lgetxattr } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../record/state-record.js';
import { resolve } from 'node:path';
import { scanRoot } from '../engine/scan.js';
import { atBeneath } from '../kernel/beneath.js';
import { MARKED_AT_START, rowFromRecord, type CatalogRow } from '../engine/catalog.js';
import type { FileState } from '../dsl/ast.js';
import type { FileFacts } from '../engine/facts.js';
import type { StateRecord } from '../record/state-record.js';
import { checkArchivedCopy } from './reconcile-hash.js';
import { handleAt } from '../changes/inode-handle.js';
import { removeGone } from './reconcile-gone.js';
import { InodeSet } from './inode-set.js';
import type { ReconcileDeps, ReconcileOptions, ReconcileResult } from './reconcile-types.js';

export type { DirtyHow, ReconcileCatalog, ReconcileDeps, ReconcileOptions, ReconcileResult } from './reconcile-types.js';

// deletedAt too: a row marked deleted whose file the scan found alive (with a record) is revived.
const same = (a: CatalogRow, b: CatalogRow) =>
  (a.deletedAt ?? null) === (b.deletedAt ?? null) &&
  a.path === b.path && a.state === b.state && a.pinned === b.pinned && a.tier === b.tier && a.key === b.key && a.size === b.size && a.sha256 === b.sha256 && a.archivedAt === b.archivedAt;

export async function reconcile(opts: ReconcileOptions, deps: ReconcileDeps): Promise<ReconcileResult> {
  const r: ReconcileResult = {
    dryRun: opts.dryRun,
    checked: 0,
    dirty: { bySizeMtime: 0, byHash: 0, files: [] },
    unverified: 0,
    hashed: { files: 0, bytes: 0 },
    skipped: [],
    rows: { added: 0, updated: 0, removed: 0 },
    scanErrors: [],
  };
  const cat = deps.catalog;
  const write = !opts.dryRun && cat !== null;
  const seen = new InodeSet();
  const roots = [...new Set(opts.roots.map((x) => resolve(x)))];
  const rootDevs = new Set<number>();
  const complete = new Set<string>();
  for (const root of roots) {
    const errorsBefore = r.scanErrors.length;
    try {
      const before = await lstat(root);
      rootDevs.add(Number(before.dev));
      for await (const f of scanRoot(root, [], [], { onError: (e) => r.scanErrors.push({ path: e.path, op: e.op, error: e.error.message }) })) {
        opts.signal?.throwIfAborted();
        await visit(f, opts, deps, r, seen, write);
      }
      // A root unmounted or bound over while we walked (a `backing` detached at stop) reads
      // as empty: every row under it would look gone, and start-up marking skips deleted rows.
      const after = await lstat(root).catch(() => null);
      if (!after || after.dev !== before.dev || after.ino !== before.ino) {
        r.scanErrors.push({ path: root, op: 'scan', error: 'the root changed during the scan (unmounted or bound over): its rows are left alone' });
      }
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      r.scanErrors.push({ path: root, op: 'scan', error: (e as Error).message });
    }
    if (r.scanErrors.length === errorsBefore) complete.add(root);
  }
  if (cat) await removeGone(cat, [...complete], rootDevs, seen, r, write, opts.now ?? Date.now(), deps);
  return r;
}

async function visit(f: FileFacts, opts: ReconcileOptions, deps: ReconcileDeps, r: ReconcileResult, seen: InodeSet, write: boolean): Promise<void> {
  const cat = deps.catalog;
  const row = cat?.get(f.dev, f.ino) ?? null;
  let rec: StateRecord | null = f.record;
  if (rec || row) seen.add(f.dev, f.ino);
  if (!rec) {
    // A row for a file without a record (unpinned, record removed): not managed any more.
    if (row && (!write || stillAsSeen(f, null))) {
      r.rows.removed++;
      if (write) cat!.remove(f.dev, f.ino);
    }
    return;
  }
  r.checked++;
  let state: FileState = f.state;
  let verifiedCtime: string | null = null;
  if (rec.state === 'archived' && rec.copy) {
    if (state === 'dirty') {
      // Found: the catalog did not know yet (the change tracker may have told it already).
      if (row?.state !== 'dirty') {
        r.dirty.bySizeMtime++;
        r.dirty.files.push({ path: f.absPath, how: 'size/mtime' });
        deps.log.info('archived file changed (size/mtime): dirty', { op: 'reconcile', path: f.absPath, tier: rec.copy.tier, key: rec.copy.key });
      }
    } else {
      const ctimeNs = await ctimeOf(f.absPath, f);
      const recorded = cat?.ctimeOf(f.dev, f.ino) ?? null;
      if (ctimeNs !== null && recorded !== ctimeNs) {
        if (opts.hash && opts.yieldTo?.()) {
          r.unverified++;
          r.skipped.push({ path: f.absPath, why: 'not hashed: the engine is migrating' });
        } else if (opts.hash && (opts.hashMaxBytes === undefined || f.size <= opts.hashMaxBytes)) {
          const h = await checkArchivedCopy(f.absPath, { root: f.root, dev: f.dev, ino: f.ino, size: f.size, mtimeNs: f.mtimeNs, ctimeNs, record: rec }, opts.dryRun, opts.signal, opts.yieldTo);
          if (h.kind === 'skipped') {
            r.unverified++;
            r.skipped.push({ path: f.absPath, why: h.why });
          } else {
            r.hashed.files++;
            r.hashed.bytes += h.bytes;
            if (h.kind === 'match') verifiedCtime = h.ctimeNs;
            else {
              r.dirty.byHash++;
              r.dirty.files.push({ path: f.absPath, how: 'hash' });
              state = 'dirty';
              rec = { ...rec, state: 'dirty' };
              deps.log.warn('archived file differs from its copy (same size and mtime): dirty', { op: 'reconcile', path: f.absPath, tier: rec.copy!.tier, key: rec.copy!.key });
            }
          }
        } else r.unverified++;
      }
    }
  }
  const want = rowFromRecord({ dev: f.dev, ino: f.ino, absPath: f.absPath, size: f.size }, rec, state, opts.now ?? Date.now())!;
  const changed = !row || !same(row, want);
  // The scan's view may be old by now (the engine released the file meanwhile: its row
  // must not be overwritten with a stale state). Check and write with no await between:
  // in the daemon the engine runs on this thread, so nothing interleaves.
  if (write && (changed || verifiedCtime !== null) && !stillAsSeen(f, rec)) {
    r.skipped.push({ path: f.absPath, why: 'changed during the scan: row left to the next pass' });
    return;
  }
  if (!row) r.rows.added++;
  else if (changed) r.rows.updated++;
  if (write && changed) cat!.upsert({ ...want, handle: handleAt(f.absPath, f.dev, f.ino) });
  else if (write && row && !row.handle) {
    // A row from before the handle column (or written without one): give it its handle.
    const h = handleAt(f.absPath, f.dev, f.ino);
    if (h) cat!.setHandle?.(f.dev, f.ino, h);
  }
  if (write && verifiedCtime !== null) cat!.setCtime(f.dev, f.ino, verifiedCtime);
  // Start-up marking goes by the row's path: a released file renamed or unlisted while the
  // daemon was down was not marked; the daemon marks it now. Holes are the record's word
  // (rec.state), not the derived state: a released file written past its end derives
  // 'dirty' and still has holes.
  const holes = rec.state === 'released' || rec.state === 'partial';
  const listed = row !== null && row.path === f.absPath && row.deletedAt == null && MARKED_AT_START.includes(row.state);
  if (holes && !listed && !opts.dryRun && deps.onReleasedFound) {
    await deps.onReleasedFound(f.absPath, { dev: f.dev, ino: f.ino }).catch((e: unknown) => deps.log.warn('reconcile: marking a released file failed', { op: 'mark', path: f.absPath, err: e }));
  }
}

/** Same inode, size, mtime and record as the scan saw (synchronous: see the caller). */
function stillAsSeen(f: FileFacts, rec: StateRecord | null): boolean {
  try {
    // Beneath the scan's root, no symlink (kernel/beneath.ts): the inode the scan saw, or false.
    return atBeneath(f.absPath, f.root, (at) => {
      const st = lstatSync(at, { bigint: true });
      if (Number(st.dev) !== f.dev || Number(st.ino) !== f.ino || Number(st.size) !== f.size || st.mtimeNs.toString() !== f.mtimeNs) return false;
      return JSON.stringify(decodeRecord(lgetxattr(at, XATTR_STATE))) === JSON.stringify(rec);
    });
  } catch {
    return false;
  }
}

/** The exact ctime (ns) of an archived file; null when it vanished meanwhile. */
async function ctimeOf(absPath: string, f: FileFacts): Promise<string | null> {
  try {
    const st = atBeneath(absPath, f.root, (at) => lstatSync(at, { bigint: true }));
    return Number(st.dev) === f.dev && Number(st.ino) === f.ino ? st.ctimeNs.toString() : null;
  } catch {
    return null;
  }
}
