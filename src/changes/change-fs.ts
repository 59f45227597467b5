// The filesystems change tracking watches, and turning the file handles in FID events back
// into objects. A FID group gets no event fd: we open the object with
// open_by_handle_at(mountFd, handle, O_PATH).
//
// Why O_PATH (measured on 6.18, docs/operations.md "Change tracking"): an O_PATH open raises
// no fanotify event (no recall of a released file) and does not break a lease the engine
// holds (no 45 s stall); fstat works on it; fgetxattr on it is EBADF, so the xattr is read
// by path through /proc/self/fd/N (getxattr follows that link to the object itself).
import { closeSync, fstatSync, openSync, readlinkSync, statSync, constants } from 'node:fs';
import { getxattr, openByHandleAt, statfsFsid, ESTALE } from '../kernel/libc.js';
import type { FileId } from '../kernel/fanotify-fid.js';
import { decodeRecord, XATTR_STATE, type StateRecord } from '../engine/state-record.js';

const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;

/** One marked filesystem: its fsid (as FID records carry it), st_dev, and an fd on its root for open_by_handle_at. */
export interface WatchedFs {
  fsid: string;
  dev: number;
  mountFd: number;
  root: string;
}

export function openWatchedFs(root: string): WatchedFs {
  const fsid = statfsFsid(root);
  const mountFd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY | O_CLOEXEC);
  return { fsid, dev: statSync(root).dev, mountFd, root };
}

export function closeWatchedFs(w: WatchedFs): void {
  closeSync(w.mountFd);
}

/** What a handle names now. `gone`: the inode no longer exists or has no name left (nlink 0). */
export type Resolved =
  | { gone: true }
  | { gone: false; path: string | null; dev: number; ino: number; isFile: boolean; isDir: boolean; size: number; mtimeNs: string; record: StateRecord | null };

export function resolveHandle(w: WatchedFs, id: FileId, withRecord: boolean): Resolved {
  let fd: number;
  try {
    fd = openByHandleAt(w.mountFd, id.handle, O_PATH | O_CLOEXEC, `handle on ${w.root}`);
  } catch (e) {
    const errno = -((e as NodeJS.ErrnoException).errno ?? 0);
    if (errno === ESTALE || (e as NodeJS.ErrnoException).code === 'ENOENT') return { gone: true };
    throw e;
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (st.nlink === 0n) return { gone: true }; // unlinked, only held open
    const isFile = st.isFile();
    return {
      gone: false,
      path: linkPath(fd),
      dev: Number(st.dev),
      ino: Number(st.ino),
      isFile,
      isDir: st.isDirectory(),
      size: Number(st.size),
      mtimeNs: st.mtimeNs.toString(),
      record: withRecord && isFile ? decodeRecord(getxattr(`/proc/self/fd/${fd}`, XATTR_STATE)) : null,
    };
  } finally {
    closeSync(fd);
  }
}

/** The current path of a directory handle (directories are always connected), or null. */
export function dirPath(w: WatchedFs, id: FileId): string | null {
  const r = resolveHandle(w, id, false);
  return r.gone || !r.isDir ? null : r.path;
}

/**
 * The path in `dir` named `name`, or null when the directory is gone. `cache` (handle ->
 * path) spares the opens for the many events of one directory in a batch (rm -rf).
 */
export function entryPath(w: WatchedFs, dir: FileId, name: string, cache?: Map<string, string | null>): string | null {
  const key = cache ? dir.handle.toString('hex') : '';
  let d = cache?.get(key);
  if (d === undefined) {
    d = dirPath(w, dir);
    cache?.set(key, d);
  }
  return d === null ? null : d === '/' ? `/${name}` : `${d}/${name}`;
}

/** The fd's path, or null for a disconnected or deleted dentry (no usable absolute path). */
function linkPath(fd: number): string | null {
  try {
    const p = readlinkSync(`/proc/self/fd/${fd}`);
    return p.startsWith('/') && p !== '/' && !p.endsWith(' (deleted)') ? p : null;
  } catch {
    return null;
  }
}
