// The `backing` gate: a fileset's filesystem is mounted (by the admin) at its backing
// directory, closed to users, and shown at its root only while the daemon serves it. So a
// reader of a released file gets ENOENT from the empty root, never the zeros of a punched
// file, before the daemon has marked everything and after it stops.
//
// Invariants:
// - Bind only after every released file is marked (start-up marking goes through the
//   backing, since the root is empty then; marks are on inodes, so they hold for opens
//   through the bind too). A later worker of the same group only re-binds: the marks live
//   in the group.
// - "Bound" means the root shows the backing directory's own inode (same st_dev and st_ino):
//   never unmount anything else someone mounted at a root.
// - The bind is MS_PRIVATE: mounts made later under the root or the backing do not
//   propagate between the two.
// - Detach at stop before the group closes; a busy root (a process's cwd, an open file)
//   is detached lazily and that is logged: those processes keep the detached tree.
import { lstatSync, readdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { PolicyFile } from '../dsl/ast.js';
import { MNT_DETACH, MS_BIND, MS_PRIVATE, UMOUNT_NOFOLLOW, mountFlags, umount2 } from '../kernel/libc.js';
import type { Logger } from '../log.js';

export interface Backing {
  fileset: string;
  root: string;
  backing: string;
}

/** Every fileset's backing, once per root; two filesets naming one root with different backings are an error. */
export function backingsOf(policies: PolicyFile[]): { backings: Backing[]; problems: string[] } {
  const byRoot = new Map<string, Backing>();
  const problems: string[] = [];
  for (const pf of policies)
    for (const f of pf.filesets) {
      if (!f.backing) continue;
      const root = f.roots[0]!;
      const prev = byRoot.get(root);
      const at = `${f.backing.span.file}:${f.backing.span.line}:${f.backing.span.col}`;
      if (!prev) byRoot.set(root, { fileset: f.name, root, backing: f.backing.path });
      else if (prev.backing !== f.backing.path)
        problems.push(`${at}: root "${root}" has backing "${f.backing.path}" here and "${prev.backing}" in fileset '${prev.fileset}'`);
    }
  for (const a of byRoot.values())
    for (const b of byRoot.values())
      if (a !== b && (inside(a.root, b.backing) || a.root === b.backing))
        problems.push(`root "${a.root}" of fileset '${a.fileset}' is inside backing "${b.backing}" of fileset '${b.fileset}'`);
  return { backings: [...byRoot.values()], problems };
}

/** Same backings (order aside): a reload may not change them, the marks were placed for these. */
export function sameBackings(a: Backing[], b: Backing[]): boolean {
  const key = (l: Backing[]) => l.map((x) => `${x.root}\0${x.backing}`).sort().join('\n');
  return key(a) === key(b);
}

function inside(p: string, dir: string): boolean {
  return dir === '/' || p.startsWith(`${dir}/`);
}

/** The path to open `path` (a root path, as the catalog has it) through before the root is bound. */
export function throughBacking(path: string, backings: Backing[]): string {
  for (const b of backings) {
    if (path === b.root) return b.backing;
    if (path.startsWith(`${b.root}/`)) return b.backing + path.slice(b.root.length);
  }
  return path;
}

/** True when the root shows the backing directory itself (our bind, or one left by a killed daemon). */
export function isBound(b: Backing): boolean {
  try {
    const r = statSync(b.root, { bigint: true });
    const k = statSync(b.backing, { bigint: true });
    return r.dev === k.dev && r.ino === k.ino;
  } catch {
    return false;
  }
}

/**
 * Before start-up marking: detaches binds a killed daemon left (while they show the backing,
 * a root reads zeros: no group marks anything), then checks the layout. Returns the problems
 * (for the user), empty when every backing can be bound.
 */
export function prepareBackings(backings: Backing[], log: Logger): string[] {
  const problems: string[] = [];
  for (const b of backings) {
    const left = detachWhileBound(b, MNT_DETACH);
    if (left > 0) log.warn('detached a bind left by a daemon that did not stop', { op: 'backing', path: b.root, backing: b.backing, count: left });
    const why = layoutProblem(b);
    if (why) problems.push(`fileset '${b.fileset}': ${why}`);
  }
  return problems;
}

/** Why `b` cannot be bound safely, or null. Run while the root is not bound. */
export function layoutProblem(b: Backing): string | null {
  let root;
  let backing;
  try {
    backing = statSync(b.backing);
  } catch (e) {
    return `backing "${b.backing}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  if (!backing.isDirectory()) return `backing "${b.backing}" is not a directory`;
  if (backing.dev === statSync('/').dev)
    return `backing "${b.backing}" is on the root filesystem: mount the managed filesystem there first (fstab)`;
  const open = reachableAncestor(b.backing);
  if (open) return `backing "${b.backing}" can be reached by other users (no directory above it is closed to them, e.g. "${open}"): chmod 700 ${dirname(b.backing)}`;
  try {
    root = lstatSync(b.root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `root "${b.root}" does not exist: create it as an empty directory` : `root "${b.root}": ${code}`;
  }
  if (!root.isDirectory()) return `root "${b.root}" is not a directory (a symlink?): it must be an empty directory`;
  if (root.dev === backing.dev)
    return `root "${b.root}" is on the managed filesystem itself: mount that filesystem at the backing only, and leave the root an empty directory outside it`;
  if (readdirSync(b.root).length > 0) return `root "${b.root}" is not empty: readers would see those files while the daemon is down`;
  return null;
}

/**
 * The first directory above the backing, from its parent up to /, that is not closed to
 * other users, when none is (null when one is: owned by root with no search bit for group
 * or others). The backing itself is the filesystem's root directory, the same inode the
 * bind shows at the root: its mode is what readers need, so it cannot be the lock.
 */
export function reachableAncestor(backing: string): string | null {
  let first: string | null = null;
  for (let d = dirname(backing); ; d = dirname(d)) {
    const st = statSync(d);
    if (st.uid === 0 && (st.mode & 0o011) === 0) return null;
    first ??= d;
    if (d === '/') return first;
  }
}

/** Binds each backing onto its root (unless already bound), private. Throws with the root in the message. */
export function bindBackings(backings: Backing[], log: Logger): void {
  for (const b of backings) {
    if (isBound(b)) continue;
    mountFlags(b.backing, b.root, MS_BIND);
    mountFlags(null, b.root, MS_PRIVATE);
    log.info('backing bound onto root', { op: 'backing', path: b.root, backing: b.backing });
  }
}

/**
 * Stop step "detach roots": after the worker is done with the files (answered, drained),
 * before the group closes. Tries a plain unmount, then a lazy one when the root is busy.
 */
export function detachBackings(backings: Backing[], log: Logger): void {
  for (const b of backings) {
    try {
      let n = detachWhileBound(b, 0);
      if (isBound(b)) {
        n += detachWhileBound(b, MNT_DETACH);
        log.warn('root busy at stop: detached lazily; processes with their working directory or open files under it keep the detached tree', {
          op: 'backing',
          path: b.root,
        });
      }
      if (n > 0) log.info('backing detached from root', { op: 'backing', path: b.root, backing: b.backing });
    } catch (e) {
      log.error('cannot detach backing from root', { op: 'backing', path: b.root, backing: b.backing, err: e });
    }
  }
}

/** Unmounts the root while it shows the backing (binds may be stacked); returns how many. EBUSY ends a plain try. */
function detachWhileBound(b: Backing, flags: number): number {
  let n = 0;
  while (isBound(b) && n < 64) {
    try {
      umount2(b.root, flags | UMOUNT_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EBUSY' && flags === 0) return n;
      throw e;
    }
    n++;
  }
  return n;
}
