// Opening only what a fileset holds (issue 18). The daemon is root among users who can
// rename their own directories at any moment; a path is a question asked again at every
// resolution, so it is resolved once, under rules, into an O_PATH fd, and everything else
// goes through that fd.
//
// Rules:
// - Resolution starts at the fileset root's fd and uses openat2 with RESOLVE_BENEATH |
//   RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS: no symlink in any
//   component (not only the last, which is all O_NOFOLLOW guards), no `..` above the root,
//   no mount crossed. A directory swapped for a symlink mid-walk fails with ELOOP.
// - The first open is O_PATH: it raises no fanotify event and breaks no lease (measured,
//   test/kernel/beneath.test.ts), so nothing happens to an inode before it is checked.
// - The inode is checked (dev, ino; the file handle when the caller has one) against what
//   the scan or the catalog saw before any side effect; real opens then go through
//   `/proc/self/fd/N` (the magic link leads to that inode whatever the path does meanwhile).
// - A path outside every fileset root is refused, naming the path and the roots.
// - Creation beneath a directory fd (createBeneath, for `tier import`) is O_CREAT|O_EXCL
//   under the same rules: a name that exists, even as a symlink, is EEXIST, never opened.
import { closeSync, constants, fstatSync, openSync, type BigIntStats } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';
import { fileHandleOfFd, openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV } from './libc.js';

export const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
export const BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;
/** For callers with no fileset at hand (library use in tests): no symlink, still no mount rule. */
const NO_LINKS = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
const PATH_FLAGS = O_PATH | constants.O_NOFOLLOW | O_CLOEXEC;
// For openat2: without O_NOFOLLOW, RESOLVE_NO_SYMLINKS makes a symlink as last component
// ELOOP too (with it, O_PATH would open the link itself).
const AT2_FLAGS = O_PATH | O_CLOEXEC;

/** Why a path was refused: `code` is the errno (ELOOP, EXDEV, ENOENT) or REPLACED / OUTSIDE. */
export class BeneathError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** The inode a caller expects (from its scan or catalog row). */
export interface Expected {
  dev: number | bigint;
  ino: number | bigint;
  /** The catalog's file handle: also checked when given (an inode number can be reused). */
  handle?: Buffer | null;
}

/** The fileset root holding absPath (the longest match) and the path below it; throws when none does. */
export function locate(absPath: string, roots: readonly string[]): { root: string; rel: string } {
  const p = normalize(absPath);
  let best: string | null = null;
  for (const r0 of roots) {
    const r = normalize(r0).replace(/\/+$/, '') || '/';
    const inside = r === '/' ? p.startsWith('/') : p === r || p.startsWith(`${r}/`);
    if (inside && (best === null || r.length > best.length)) best = r;
  }
  if (!isAbsolute(p) || best === null) {
    const list = roots.length ? roots.join(', ') : '(no fileset declared)';
    throw new BeneathError(`${absPath}: outside every fileset (roots: ${list}); refused`, 'OUTSIDE');
  }
  const rel = p === best ? '.' : p.slice(best === '/' ? 1 : best.length + 1);
  return { root: best, rel };
}

/** O_PATH fd of a fileset root (the administrator's path: its own components may be links, the root itself not). */
export function openRootFd(root: string): number {
  return openSync(root, PATH_FLAGS | constants.O_DIRECTORY);
}

function explain(e: unknown, what: string): BeneathError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
  const why =
    code === 'ELOOP' ? 'a symlink, or one in its path (not followed)'
    : code === 'EXDEV' ? 'the path leaves the fileset or crosses a mount'
    : code === 'ENOENT' ? 'no such file'
    : (e as Error).message;
  return new BeneathError(`${what}: ${why}`, code);
}

/** O_PATH fd of `rel` beneath dirFd under BENEATH rules (a single name or a relative path). */
export function pathFdBeneath(dirFd: number, rel: string, what: string, extra = 0): number {
  try {
    return openat2(dirFd, rel, AT2_FLAGS | extra, BENEATH, what);
  } catch (e) {
    throw explain(e, what);
  }
}

/** A new file `name` in dirFd, opened with `flags` (plus O_CREAT|O_EXCL|O_NOFOLLOW) under BENEATH rules. */
export function createBeneath(dirFd: number, name: string, flags: number, mode: number, what = name): number {
  return openat2(dirFd, name, flags | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | O_CLOEXEC, BENEATH, what, mode);
}

/** An inode held by an O_PATH fd: `proc` reopens it, `st` is its fstat at resolution. */
export interface Pinned {
  fd: number;
  st: BigIntStats;
  /** `/proc/self/fd/N`: open(2), getxattr(2), statfs(2) of exactly this inode. */
  proc: string;
  close(): void;
}

/** Throws unless st (and the inode's handle) is the expected inode. */
export function checkInode(fd: number, st: BigIntStats, expect: Expected | undefined, what: string): void {
  if (!expect) return;
  if (BigInt(expect.dev) !== st.dev || BigInt(expect.ino) !== st.ino) {
    throw new BeneathError(`${what}: replaced since it was scanned (inode ${expect.dev}:${expect.ino}, now ${st.dev}:${st.ino})`, 'REPLACED');
  }
  if (expect.handle && expect.handle.length > 0) {
    const h = fileHandleOfFd(fd);
    if (h && !h.equals(expect.handle)) throw new BeneathError(`${what}: replaced since it was scanned (file handle differs)`, 'REPLACED');
  }
}

/**
 * O_PATH fd of whatever absPath names under the rules: beneath `root` (null: no fileset
 * known, symlinks still refused in every component). No type or inode check.
 */
export function resolveBeneath(absPath: string, root: string | null): number {
  if (root === null) {
    if (!isAbsolute(absPath)) throw new BeneathError(`${absPath}: not an absolute path`, 'EINVAL');
    const rootFd = openSync('/', PATH_FLAGS | constants.O_DIRECTORY);
    try {
      return openat2(rootFd, normalize(absPath).slice(1) || '.', AT2_FLAGS, NO_LINKS, absPath);
    } catch (e) {
      throw explain(e, absPath);
    } finally {
      closeSync(rootFd);
    }
  }
  const rootFd = openRootFd(root);
  try {
    return pathFdBeneath(rootFd, locate(absPath, [root]).rel, absPath);
  } finally {
    closeSync(rootFd);
  }
}

/**
 * Resolves absPath beneath `root` (null: no fileset known, symlinks still refused in every
 * component) into an O_PATH fd of a regular file, the inode `expect` names when given.
 */
export function pinBeneath(absPath: string, root: string | null, expect?: Expected): Pinned {
  const fd = resolveBeneath(absPath, root);
  try {
    const st = fstatSync(fd, { bigint: true });
    if (st.isSymbolicLink()) throw new BeneathError(`${absPath}: is a symlink (not followed)`, 'ELOOP');
    if (!st.isFile()) throw new BeneathError(`${absPath}: not a regular file`, 'EFTYPE');
    checkInode(fd, st, expect, absPath);
    let open = true;
    return {
      fd,
      st,
      proc: `/proc/self/fd/${fd}`,
      close: () => {
        if (open) closeSync(fd);
        open = false;
      },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** pinBeneath with the root found among `roots` (refused outside all); roots undefined: no fileset rule. */
export function pinInFilesets(absPath: string, roots: readonly string[] | undefined, expect?: Expected): Pinned {
  return pinBeneath(absPath, roots ? locate(absPath, roots).root : null, expect);
}

/**
 * Runs fn with a path for lstat/lgetxattr that names absPath's last component inside its
 * parent directory, the parent resolved under the rules (`/proc/self/fd/N/name`, the
 * scan's form): what it sees is what that directory holds, never reached through a
 * symlink, and a last component that is a symlink is seen as one. No open of the file
 * itself, so no fanotify event: for readers (status, explain, gc, reconcile checks).
 */
export function atBeneath<T>(absPath: string, root: string | null, fn: (at: string) => T): T {
  const p = normalize(absPath);
  const slash = p.lastIndexOf('/');
  const name = p.slice(slash + 1);
  if (slash < 0 || name === '' || name === '.' || name === '..') throw new BeneathError(`${absPath}: not a file path`, 'EINVAL');
  const dirFd = resolveBeneath(p.slice(0, slash) || '/', root);
  try {
    return fn(`/proc/self/fd/${dirFd}/${name}`);
  } finally {
    closeSync(dirFd);
  }
}

/** The root among `roots` holding absPath, or null (none holds it, or no roots given). */
export function rootIn(absPath: string, roots: readonly string[] | undefined): string | null {
  if (!roots) return null;
  try {
    return locate(absPath, roots).root;
  } catch {
    return null;
  }
}

/** atBeneath, with the root found among `roots` when the path lies beneath one (else: no symlink rule only). */
export function atInFilesets<T>(absPath: string, roots: readonly string[] | undefined, fn: (at: string) => T): T {
  return atBeneath(absPath, rootIn(absPath, roots), fn);
}
