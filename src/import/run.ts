// `tier import`: every object a tier lists under a prefix becomes a released file under a
// directory of a fileset (entry.ts does one object). Runs inside the daemon: only it can
// mark files, and a file must be marked before it has a visible name.
//
// Rules:
// - Listing and creation stream: one object at a time, directory fds cached only along
//   the current key (beneath.ts). The keys listed go to the catalog's database (seen.ts),
//   not memory, to find vanished objects afterwards: memory is flat however large the tree.
// - Foreign data is never written or deleted on the tier; local data is never clobbered
//   (entry.ts: refresh only untouched files; --delete only untouched files).
// - Every object gets one outcome; problems are reported per key, the run goes on.
import { closeSync, fstatSync } from 'node:fs';
import type { Catalog } from '../engine/catalog.js';
import type { Logger } from '../log.js';
import type { Tier } from '../tiers/tier.js';
import { validatorOf } from '../tiers/validator.js';
import { DirCursor, openImportRoot, unlinkIn } from './dir-cursor.js';
import { resolveOwnership, type OwnershipRequest } from './ownership.js';
import { importOne, isImportOf, look, untouched, type EntryEnv, type EntryOutcome } from './entry.js';
import { mapKey, normalPrefix } from './keymap.js';
import { SeenKeys } from './seen.js';

export interface ImportOptions {
  tierName: string;
  tier: Tier;
  dir: string; // absolute
  /** Fileset roots of the policy: dir must lie inside one. */
  roots: string[];
  prefix?: string;
  dryRun: boolean;
  deleteVanished: boolean;
  /** Owner and modes of what is created (ownership.ts: default the directory's owner, 0644/0755). */
  ownership?: OwnershipRequest;
  chunk: number;
  now: number;
}

export interface ImportDeps {
  catalog: Catalog | null;
  markReleased(fd: number): void | Promise<void>;
  log: Logger;
}

export type ImportItemKind = EntryOutcome | 'skipped' | 'failed' | 'vanished' | 'deleted';

export interface ImportItem {
  type: 'item';
  kind: ImportItemKind;
  key: string;
  path?: string;
  detail?: string;
}

export interface ImportProgress {
  type: 'progress';
  listed: number;
  bytes: number;
}

export type ImportEvent = ImportItem | ImportProgress;

export interface ImportSummary {
  tier: string;
  dir: string;
  prefix: string;
  dryRun: boolean;
  listed: number;
  bytes: number;
  counts: Record<ImportItemKind, number>;
  ms: number;
}

/** Items worth a line of their own; the others are only counted. */
const REPORTED: ReadonlySet<ImportItemKind> = new Set(['conflict', 'kept-local', 'skipped', 'failed', 'vanished', 'deleted']);
const PROGRESS_EVERY = 1000;

export async function runImport(o: ImportOptions, deps: ImportDeps, emit: (e: ImportEvent) => void, signal?: AbortSignal): Promise<ImportSummary> {
  const t0 = Date.now();
  const { fd: rootFd, path: root } = openImportRoot(o.dir, o.roots);
  const prefix = normalPrefix(o.prefix);
  const counts = Object.fromEntries(
    ['created', 'unchanged', 'refreshed', 'conflict', 'kept-local', 'skipped', 'failed', 'vanished', 'deleted'].map((k) => [k, 0]),
  ) as Record<ImportItemKind, number>;
  const report = (kind: ImportItemKind, key: string, path?: string, detail?: string) => {
    counts[kind]++;
    if (REPORTED.has(kind)) emit({ type: 'item', kind, key, ...(path !== undefined ? { path } : {}), ...(detail ? { detail } : {}) });
  };
  const st = fstatSync(rootFd);
  const own = resolveOwnership(o.ownership ?? {}, { uid: st.uid, gid: st.gid });
  const cursor = new DirCursor(rootFd, own);
  const env: EntryEnv = { tier: o.tierName, chunk: o.chunk, own, catalog: o.dryRun ? null : deps.catalog, markReleased: deps.markReleased, now: o.now };
  const seen = deps.catalog ? new SeenKeys(deps.catalog.sqlite, o.now) : null;
  let listed = 0;
  let bytes = 0;
  try {
    for await (const obj of o.tier.list(prefix, signal)) {
      signal?.throwIfAborted();
      listed++;
      bytes += obj.size;
      seen?.add(obj.key);
      if (listed % PROGRESS_EVERY === 0) emit({ type: 'progress', listed, bytes });
      const m = mapKey(obj.key, prefix);
      if ('skip' in m) {
        report('skipped', obj.key, undefined, m.skip);
        continue;
      }
      const path = root + '/' + ('dir' in m ? m.dir : [...m.dirs, m.name]).join('/');
      try {
        if ('dir' in m) {
          if (!o.dryRun) cursor.dir(m.dir, true);
          continue; // a directory marker object is not a file
        }
        const validator = validatorOf(obj);
        if (!validator) {
          report('skipped', obj.key, path, 'the listing gives neither ETag nor Last-Modified');
          continue;
        }
        const dirfd = cursor.dir(m.dirs, !o.dryRun);
        if (dirfd === null) {
          report('created', obj.key, path); // dry run: its directory does not exist yet
          continue;
        }
        const out = await importOne(dirfd, m.name, path, obj, validator, env, o.dryRun);
        const why = out === 'conflict' ? 'a file there is not this object\'s import: left alone' : out === 'kept-local' ? 'the object changed, but the file was recalled or changed here: left alone' : undefined;
        report(out, obj.key, path, why);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        const detail = err.code === 'ELOOP' ? 'a symlink on the way (not followed)' : err.code === 'ENOTDIR' ? 'a file where a directory must be' : err.message;
        deps.log.warn('import failed', { op: 'import', tier: o.tierName, key: obj.key, path, err: detail });
        report('failed', obj.key, path, detail);
      }
    }
    emit({ type: 'progress', listed, bytes });
    if (seen) vanished(o, root, prefix, seen, cursor, deps.catalog!, report);
  } finally {
    seen?.close();
    cursor.close();
    closeSync(rootFd);
  }
  return { tier: o.tierName, dir: root, prefix, dryRun: o.dryRun, listed, bytes, counts, ms: Date.now() - t0 };
}

/** Imported files of this tier under DIR whose object the listing no longer has. */
function vanished(
  o: ImportOptions,
  root: string,
  prefix: string,
  seen: SeenKeys,
  cursor: DirCursor,
  catalog: Catalog,
  report: (k: ImportItemKind, key: string, path?: string, detail?: string) => void,
): void {
  for (const g of seen.unseen(o.tierName, root, prefix)) {
    const rel = g.path.slice(root.length + 1).split('/');
    const name = rel.pop()!;
    const dirfd = cursor.dir(rel, false);
    const s = dirfd === null ? null : look(dirfd, name);
    if (!s || !isImportOf(s, o.tierName, g.key)) continue; // not (any more) an imported file
    if (o.deleteVanished && untouched(s)) {
      if (!o.dryRun) {
        unlinkIn(dirfd!, name);
        catalog.remove(s.dev, s.ino);
      }
      report('deleted', g.key, g.path, 'object gone from the tier; the file was untouched');
    } else {
      report('vanished', g.key, g.path, o.deleteVanished ? 'object gone from the tier; the file was recalled or changed here: kept' : 'object gone from the tier (--delete removes untouched files)');
    }
  }
}
