// Creating files and directories beneath an import root, through directory fds only.
// (Kept in one module so it can be unified with the openat2 path resolution of the
// `beneath` work on fileset roots.)
//
// Rules:
// - The root is opened once from its realpath with RESOLVE_NO_SYMLINKS; every later step
//   is openat2 relative to a directory fd with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV: a symlink a user planted anywhere below the
//   root is an error (ELOOP), never followed; nothing resolves outside the root.
// - Files are created O_CREAT|O_EXCL|O_NOFOLLOW under a hidden temporary name, mode
//   0600 root-owned until they are complete, and renamed into place by the caller.
// - Directory fds are cached along the current key's directory only (keys arrive in
//   listing order): memory stays flat however many keys there are.
import { closeSync, fchmodSync, fchownSync, fstatSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdirat, openat2, renameat2, unlinkat, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV } from '../kernel/libc.js';

const O_WRONLY = 0o1;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_DIRECTORY = 0o200000;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
const AT_FDCWD = -100;
const BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;

export const TEMP_PREFIX = '.tier-import.';

export interface Owner {
  uid: number;
  gid: number;
}

/** Opens a directory by absolute path that must contain no symlink (use its realpath). */
export function openRootDir(absPath: string): number {
  return openat2(AT_FDCWD, absPath, O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

/** A child directory of dirfd, created (mode 0755, `owner`) when missing and `create`. */
export function openChildDir(dirfd: number, name: string, create: Owner | null): number {
  try {
    return openat2(dirfd, name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, BENEATH);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // O_DIRECTORY|O_NOFOLLOW on a symlink is ENOTDIR: say ELOOP, what it is.
    if (code === 'ENOTDIR' && isSymlinkAt(dirfd, name)) throw Object.assign(new Error(`ELOOP: symlink ${JSON.stringify(name)} not followed`), { code: 'ELOOP' });
    if (code !== 'ENOENT' || !create) throw e;
  }
  try {
    mkdirat(dirfd, name, 0o755);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // a racing creator: open what is there
  }
  const fd = openat2(dirfd, name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, BENEATH);
  try {
    const st = fstatSync(fd);
    if (st.uid === 0 && create.uid !== 0) fchownSync(fd, create.uid, create.gid);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

function isSymlinkAt(dirfd: number, name: string): boolean {
  const fd = openPathAt(dirfd, name);
  if (fd === null) return false;
  try {
    return fstatSync(fd).isSymbolicLink();
  } finally {
    closeSync(fd);
  }
}

/** A new, empty, root-only file under a fresh hidden name in dirfd: [fd, name]. */
export function createTemp(dirfd: number): { fd: number; name: string } {
  const name = TEMP_PREFIX + randomBytes(8).toString('hex');
  const fd = openat2(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, BENEATH, name, 0o600);
  return { fd, name };
}

/** The finished file gets its owner and mode (after it was marked). */
export function publishMode(fd: number, owner: Owner, mode = 0o644): void {
  fchownSync(fd, owner.uid, owner.gid);
  fchmodSync(fd, mode);
}

/** An O_PATH fd on dirfd/name without following a symlink (raises no fanotify event); null when absent. */
export function openPathAt(dirfd: number, name: string): number | null {
  try {
    return openat2(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, BENEATH);
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
    private readonly owner: Owner,
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
        fd = openChildDir(parent, dirs[i]!, create ? this.owner : null);
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
