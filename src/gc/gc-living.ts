// gc's look at a catalog row that seems to name a deleted file (marked deleted, or its
// path gone): its file handle may show the inode alive under another name (a hard link
// outside the fileset roots, where gc's scan does not look), its record still naming the
// row's copy. Such a row is a reference; deleting its object would leave that file
// reading EIO forever (its data exists only in the tier).
import type { Logger } from '../log.js';
import type { CatalogRef, Revive } from './gc-types.js';
import type { InodeProbe } from '../changes/inode-handle.js';

/** True when `r` is a reference after all (alive and named, or the probe failed: unsure keeps). */
export function livingReference(probe: InodeProbe, r: CatalogRef, revive: Revive[], log: Logger): boolean {
  if (r.dev === undefined || r.ino === undefined || !r.tier || !r.key) return false;
  const l = probe.inodeAlive({ dev: r.dev, ino: r.ino, tier: r.tier, key: r.key, handle: r.handle ?? null });
  const fields = { op: 'gc', path: r.path, tier: r.tier, key: r.key };
  if (l.kind === 'unsure') {
    log.warn('gc: cannot tell whether the file lives on under another name: its object is kept', { ...fields, error: l.error });
    return true;
  }
  if (l.kind !== 'alive' || !l.names) return false;
  if (l.path !== null) {
    revive.push({ dev: r.dev, ino: r.ino, path: l.path, tier: r.tier, key: r.key });
    log.info('gc: file lives on under another name: its object is referenced, row revived', { ...fields, path: l.path, from: r.path });
  } else log.info('gc: file lives on (name unknown): its object is referenced', fields);
  return true;
}
