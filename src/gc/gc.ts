// Garbage collection of tier objects nobody references: copies of deleted files and
// superseded copies of re-archived ones. Renamed files keep their object: the key lives in
// the file's xattr, not in its path.
//
// Invariants (deleting is the one step here that cannot be undone):
// - an object is referenced when a catalog row names it (unless the row's path is gone and
//   the scan covered its filesystem: a deleted file), when any file under a fileset root
//   (include/exclude ignored) carries a record naming it, or when the file at the path
//   stored with the object still carries such a record (a file moved out of the roots);
//   only an unreferenced object is an orphan;
// - if the scan of any root reported an error, nothing is deleted (a directory we could
//   not read may hold the only reference);
// - an orphan is deleted only after it has been seen unreferenced for `keepDeleted`
//   (first-seen times persist in STATE_DIR/gc-orphans.json) and its own age is past
//   `keepDeleted` too, so an upload whose record is not written yet is never taken;
// - only keys of the shape the engine makes (xx/UUID) are ever deleted: foreign objects
//   sharing a bucket prefix are listed as such and left alone;
// - an object a catalog row names as imported (foreign, live or deleted) is never deleted,
//   even with a key of the engine's shape (a bucket another tier installation wrote);
// - a copy's chunk sums `${key}.sums` belong to `${key}`: referenced with it, deleted with
//   it (after it), and an orphan on their own only when their object is one too (or gone);
// - a catalog row change tracking marked deleted (deleted_at) is no reference; its object's
//   retention counts from deleted_at when that is earlier than gc's own first sighting;
// - except: a row (deleted, or whose path is gone) with a file handle whose inode is alive
//   and whose record names the row's copy is a reference, wherever the inode's name is now
//   (a hard link outside the roots); the caller revives such rows (`revive`). A failed
//   probe counts as a reference too. Rows without a handle (older catalogs): as above.
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { silentLogger } from '../log.js';
import { scanRoot } from '../engine/scan.js';
import { atInFilesets } from '../kernel/beneath.js';
import { lgetxattr } from '../kernel/libc.js';
import { decodeRecord, SUMS_SUFFIX, sumsKey, XATTR_STATE } from '../engine/state-record.js';
import { InodeProbe } from '../changes/inode-handle.js';
import { livingReference } from './gc-living.js';
import type { CatalogRef, GcOptions, GcResult, GcTierResult, Revive } from './gc-types.js';

export type { CatalogRef, GcOptions, GcResult, GcTierResult, OrphanFate, Revive } from './gc-types.js';

export const ENGINE_KEY = /^[0-9a-f]{2}\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const ORPHANS_FILE = 'gc-orphans.json';

type Refs = Map<string, Set<string>>; // tier -> keys

function addRef(refs: Refs, tier: string | null | undefined, key: string | null | undefined): void {
  if (!tier || !key) return;
  let s = refs.get(tier);
  if (!s) refs.set(tier, (s = new Set()));
  s.add(key);
}

/** Is `key` still named by the record of the file at `path` (the path stored with the object)? No symlink followed (kernel/beneath.ts). */
function referencedAt(path: string | undefined, tier: string, key: string, roots: readonly string[]): boolean {
  if (!path) return false;
  try {
    const rec = decodeRecord(atInFilesets(path, roots, (at) => lgetxattr(at, XATTR_STATE)));
    return rec?.copy?.tier === tier && rec.copy.key === key;
  } catch {
    return false;
  }
}

export async function collectGarbage(o: GcOptions): Promise<GcResult> {
  const log = o.log ?? silentLogger;
  const refs: Refs = new Map();
  const scanErrors: GcResult['scanErrors'] = [];
  const scannedDevs = new Set<number>();
  for (const root of o.roots) {
    try {
      scannedDevs.add(lstatSync(root).dev);
      for await (const f of scanRoot(root, [], [], { onError: (e) => scanErrors.push({ path: e.path, op: e.op, error: e.error.message }) }))
        addRef(refs, f.record?.copy?.tier, f.record?.copy?.key);
    } catch (e) {
      scanErrors.push({ path: root, op: 'scan', error: (e as Error).message });
    }
  }
  const complete = scanErrors.length === 0;
  // A catalog row is only an index entry: when its path is gone and the scan covered its
  // filesystem, the file was deleted (a rename inside the roots was found by the scan).
  const deletedAt = new Map<string, number>(); // tier \0 key -> earliest deleted_at
  const deletedRows: CatalogRef[] = [];
  const revive: Revive[] = [];
  const probe = new InodeProbe(o.roots);
  const foreignKeys = new Set<string>(); // tier \0 key of imported objects
  for (const r of o.catalogRefs) {
    if (r.foreign && r.tier && r.key) foreignKeys.add(`${r.tier}\0${r.key}`);
    const deleted = r.deletedAt !== undefined && r.deletedAt !== null;
    const vouched = !deleted && (r.path === undefined || r.dev === undefined || !scannedDevs.has(r.dev) || existsLstat(r.path, o.roots));
    if (!vouched && r.handle && livingReference(probe, r, revive, log)) {
      addRef(refs, r.tier, r.key);
      continue;
    }
    if (deleted) {
      deletedRows.push(r);
      const k = `${r.tier}\0${r.key}`;
      if (r.tier && r.key) deletedAt.set(k, Math.min(deletedAt.get(k) ?? Infinity, r.deletedAt!));
      continue;
    }
    if (vouched) addRef(refs, r.tier, r.key);
  }
  probe.close();
  if (!complete) log.warn('gc: scan incomplete, nothing will be deleted', { errors: scanErrors.length, path: scanErrors[0]?.path });

  const stateFile = join(o.stateDir, ORPHANS_FILE);
  const seen = readOrphans(stateFile);
  const nextSeen: Record<string, Record<string, number>> = {};
  const result: GcResult = { tiers: [], scanErrors, deleted: 0, deletedBytes: 0, forget: [], revive };
  const present = new Map<string, Set<string>>(); // tier -> keys still there after this run (listed tiers only)

  for (const [name, tier] of o.tiers) {
    if (tier.kind === 'http') continue; // read-only (import only): nothing of ours is there
    const keep = o.keepDeleted.get(name) ?? DEFAULT_KEEP_DELETED_MS;
    const tr: GcTierResult = { tier: name, listed: 0, referenced: 0, foreign: 0, orphans: [] };
    result.tiers.push(tr);
    const mine = refs.get(name) ?? new Set<string>();
    const prevSeen = seen[name] ?? {};
    const nowSeen: Record<string, number> = {};
    const deletedWith = new Set<string>(); // sums deleted along with their object
    const still = new Set<string>();
    try {
      for await (const obj of tier.list('')) {
        tr.listed++;
        if (deletedWith.has(obj.key)) continue;
        still.add(obj.key);
        // A sums object follows its copy's object (same key without the suffix).
        const base = obj.key.endsWith(SUMS_SUFFIX) ? obj.key.slice(0, -SUMS_SUFFIX.length) : obj.key;
        if (mine.has(base)) {
          tr.referenced++;
          continue;
        }
        if (!ENGINE_KEY.test(base) || foreignKeys.has(`${name}\0${base}`)) {
          tr.foreign++;
          continue;
        }
        const firstSeen = Math.min(prevSeen[obj.key] ?? o.now, deletedAt.get(`${name}\0${base}`) ?? Infinity);
        const age = obj.lastModified ? o.now - obj.lastModified.getTime() : 0;
        const orphan: GcTierResult['orphans'][number] = { key: obj.key, size: obj.size, firstSeen, fate: 'kept: retention' };
        if (!complete) orphan.fate = 'kept: scan incomplete';
        else if (o.now - firstSeen >= keep && age >= keep) {
          const info = (base !== obj.key ? await tier.stat(base) : null) ?? (await tier.stat(obj.key));
          if (referencedAt(info?.meta?.path, name, base, o.roots)) {
            tr.referenced++; // moved out of the roots, still in use
            continue;
          }
          if (o.dryRun) orphan.fate = 'would delete';
          else {
            try {
              await tier.delete(obj.key);
              // Its sums go with it (a missing key deletes fine); listed later, they find it gone.
              if (base === obj.key) {
                await tier.delete(sumsKey(obj.key));
                deletedWith.add(sumsKey(obj.key));
              }
              orphan.fate = 'deleted';
              still.delete(obj.key);
              result.deleted++;
              result.deletedBytes += obj.size;
              log.info('gc: deleted orphan object', { tier: name, key: obj.key, size: obj.size, path: info?.meta?.path });
            } catch (e) {
              orphan.fate = 'delete failed';
              orphan.error = (e as Error).message;
              log.error('gc: delete failed', { tier: name, key: obj.key, err: e });
            }
          }
        }
        if (orphan.fate !== 'deleted') nowSeen[obj.key] = firstSeen;
        tr.orphans.push(orphan);
      }
      present.set(name, still);
    } catch (e) {
      tr.error = (e as Error).message;
      log.error('gc: listing failed', { tier: name, err: e });
      Object.assign(nowSeen, prevSeen); // keep what we knew
    }
    nextSeen[name] = nowSeen;
  }
  if (!o.dryRun) await writeOrphans(stateFile, nextSeen);
  for (const r of deletedRows) {
    const keys = r.tier ? present.get(r.tier) : undefined;
    if (keys && r.key && !keys.has(r.key) && r.dev !== undefined && r.ino !== undefined) result.forget.push({ dev: r.dev, ino: r.ino, key: r.key });
  }
  return result;
}

/** Something is at p (reached with no symlink: a swapped-in link says "unsure", so the row is kept). */
function existsLstat(p: string, roots: readonly string[]): boolean {
  try {
    atInFilesets(p, roots, (at) => lstatSync(at));
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT'; // unsure: keep
  }
}

export const DEFAULT_KEEP_DELETED_MS = 30 * 86_400_000;

function readOrphans(file: string): Record<string, Record<string, number>> {
  if (!existsSync(file)) return {};
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, Record<string, number>>) : {};
  } catch {
    return {}; // a damaged file only restarts the retention clock: safe
  }
}

/** temp file, fsync, rename, fsync the directory. */
async function writeOrphans(file: string, data: unknown): Promise<void> {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(data));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  const dh = await open(dirname(file), 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
