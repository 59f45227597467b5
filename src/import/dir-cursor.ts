// Creating files and directories beneath an import directory, through directory fds only.
// Every path is resolved by kernel/beneath.ts (the one module that resolves beneath a
// root); this module adds what import needs on top: mkdir, temporaries, renames, and a
// cache of directory fds along the current key.
//
// Rules:
// - The import directory is resolved beneath its fileset root (realpath first, then
//   openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//   RESOLVE_NO_XDEV, kernel/beneath.ts); every later step is resolved from a directory fd
//   under the same rules: a symlink a user planted anywhere below is an error (ELOOP),
//   never followed; nothing resolves outside the root.
// - Directory fds are O_PATH (no fanotify event); owner and mode are set through their
//   `/proc/self/fd/N` magic link, which names that inode whatever the path does.
// - Files are created O_CREAT|O_EXCL|O_NOFOLLOW under a hidden temporary name, mode
//   0600 root-owned until they are complete, and renamed into place by the caller.
// - Only directories this module made get the import's owner and mode (ownership.ts).
// - Directory fds are cached along the current key's directory only (keys arrive in
//   listing order): memory stays flat however many keys there are.
import { chmodSync, chownSync, closeSync, constants, fchmodSync, fchownSync, open, realpathSync } from 'node:fs';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdirat, renameat2, unlinkat } from '../kernel/libc.js';
import { locate, openRootFd, pathFdBeneath } from '../kernel/beneath.js';
import type { Ownership } from './ownership.js';

const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;
const O_CLOEXEC = 0o2000000;
const openAsync = promisify(open);

export const TEMP_PREFIX = '.tier-import.';

/**
 * DIR resolved beneath the fileset root holding it (roots and DIR realpath'd first, then
 * no symlink from the root down): an O_PATH directory fd and DIR's realpath. Throws a
 * message for the user when DIR is missing or outside every root.
 */
export function openImportRoot(dir: string, roots: readonly string[]): { fd: number; path: string } {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(`import directory ${dir}: ${missing ? 'does not exist (create it first, inside a fileset)' : (e as Error).message}`);
  }
  const realRoots = roots.flatMap((r) => {
    try {
      return [realpathSync(r)];
    } catch {
      return [];
    }
  });
  let at: { root: string; rel: string };
  try {
    at = locate(real, realRoots);
  } catch {
    throw new Error(`import directory ${dir} is not inside a fileset of the policy (roots: ${roots.join(', ') || 'none'})`);
  }
  const rootFd = openRootFd(at.root);
  try {
    return { fd: pathFdBeneath(rootFd, at.rel, `import directory ${dir}`, constants.O_DIRECTORY), path: real };
  } finally {
    closeSync(rootFd);
  }
}

/** A child directory of dirfd (O_PATH), made with `own`'s owner and mode when missing and `own` given. */
export function openChildDir(dirfd: number, name: string, own: Ownership | null): number {
  try {
    return pathFdBeneath(dirfd, name, name, constants.O_DIRECTORY);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !own) throw e;
  }
  let made = true;
  try {
    mkdirat(dirfd, name, 0o700); // opened up below, once it has its owner
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    made = false; // a racing creator's: open what is there, leave it as it is
  }
  const fd = pathFdBeneath(dirfd, name, name, constants.O_DIRECTORY);
  if (!made) return fd;
  try {
    const proc = `/proc/self/fd/${fd}`;
    chownSync(proc, own.uid, own.gid);
    chmodSync(proc, own.dirPerms);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/**
 * A new, empty, root-only file under a fresh hidden name in dirfd: [fd, name]. Async,
 * through the checked directory's magic link (O_EXCL|O_NOFOLLOW: only a new file): under a
 * filesystem mark the create raises FAN_OPEN_PERM, which the recall service on this event
 * loop answers (recall/marks.ts); a synchronous open would wait for it forever.
 */
export async function createTemp(dirfd: number): Promise<{ fd: number; name: string }> {
  const name = TEMP_PREFIX + randomBytes(8).toString('hex');
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | O_CLOEXEC;
  return { fd: await openAsync(`/proc/self/fd/${dirfd}/${name}`, flags, 0o600), name };
}

/** The finished file gets its owner and mode (after it was marked). */
export function publishMode(fd: number, own: Ownership): void {
  fchownSync(fd, own.uid, own.gid);
  fchmodSync(fd, own.filePerms);
}

/** An O_PATH fd on dirfd/name, a symlink itself (not followed; raises no fanotify event); null when absent. */
export function openPathAt(dirfd: number, name: string): number | null {
  try {
    return pathFdBeneath(dirfd, name, name, constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Renames within one directory; `replace` false: EEXIST when the target exists. */
export function renameIn(dirfd: number, from: string, to: string, replace: boolean): void {
  renameat2(dirfd, from, dirfd, to, replace ? 0 : RENAME_NOREPLACE);
}

/** Atomically swaps two names in one directory. */
export function exchangeIn(dirfd: number, a: string, b: string): void {
  renameat2(dirfd, a, dirfd, b, RENAME_EXCHANGE);
}

export function unlinkIn(dirfd: number, name: string): void {
  unlinkat(dirfd, name, 0);
}

/**
 * The directory fds along one key's directory path, reused while consecutive keys share
 * a prefix (listings are sorted, so this is nearly always).
 */
export class DirCursor {
  private readonly names: string[] = [];
  private readonly fds: number[] = [];

  constructor(
    readonly rootFd: number,
    private readonly own: Ownership,
  ) {}

  /** The fd of root/dirs..., creating missing directories when `create`; null when missing and not. */
  dir(dirs: readonly string[], create: boolean): number | null {
    let same = 0;
    while (same < dirs.length && same < this.names.length && dirs[same] === this.names[same]) same++;
    while (this.names.length > same) {
      this.names.pop();
      closeSync(this.fds.pop()!);
    }
    for (let i = same; i < dirs.length; i++) {
      const parent = i === 0 ? this.rootFd : this.fds[i - 1]!;
      let fd: number;
      try {
        fd = openChildDir(parent, dirs[i]!, create ? this.own : null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !create) return null;
        throw e;
      }
      this.names.push(dirs[i]!);
      this.fds.push(fd);
    }
    return dirs.length === 0 ? this.rootFd : this.fds[dirs.length - 1]!;
  }

  close(): void {
    while (this.fds.length) closeSync(this.fds.pop()!);
    this.names.length = 0;
  }
}
