// The only koffi importer: thin libc bindings for what Node's fs lacks (fanotify,
// leases, fallocate, xattrs, nanosecond futimens, nonblocking read on the group fd).
//
// Invariants:
// - errno is read with koffi.errno() immediately after the failing call, before any
//   other JS that could call into libc, and turned into a Node-style error:
//   `code` ('EAGAIN'), `errno` (negative, like Node's fs errors), `syscall`, `path`.
// - Every binding is synchronous: these calls do not block (the group fd is
//   FAN_NONBLOCK; xattr/fallocate/futimens are metadata calls).
import koffi from 'koffi';
import { getSystemErrorName } from 'node:util';
import { fsidAt } from './fanotify-fid.js';

const lib = koffi.load('libc.so.6');

const c = {
  fanotify_init: lib.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)'),
  fanotify_mark: lib.func(
    'int fanotify_mark(int fanotify_fd, unsigned int flags, uint64_t mask, int dirfd, const char *pathname)',
  ),
  fcntl: lib.func('int fcntl(int fd, int cmd, ...)'),
  fallocate: lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
  fgetxattr: lib.func('intptr_t fgetxattr(int fd, const char *name, _Out_ void *value, size_t size)'),
  lgetxattr: lib.func('intptr_t lgetxattr(const char *path, const char *name, _Out_ void *value, size_t size)'),
  fsetxattr: lib.func('int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)'),
  fremovexattr: lib.func('int fremovexattr(int fd, const char *name)'),
  futimens: lib.func('int futimens(int fd, const void *times)'),
  read: lib.func('intptr_t read(int fd, _Out_ void *buf, size_t count)'),
  write: lib.func('intptr_t write(int fd, const void *buf, size_t count)'),
  strerror: lib.func('const char *strerror(int errnum)'),
  open_by_handle_at: lib.func('int open_by_handle_at(int mount_fd, const void *handle, int flags)'),
  name_to_handle_at: lib.func('int name_to_handle_at(int dirfd, const char *pathname, _Inout_ void *handle, _Out_ int *mount_id, int flags)'),
  getxattr: lib.func('intptr_t getxattr(const char *path, const char *name, _Out_ void *value, size_t size)'),
  statfs: lib.func('int statfs(const char *path, _Out_ void *buf)'),
  // Creation beneath a directory fd (src/import/beneath.ts): openat2 has no glibc wrapper.
  syscall_openat2: lib.func('long syscall(long nr, int dirfd, const char *path, const void *how, size_t size)'),
  mkdirat: lib.func('int mkdirat(int dirfd, const char *path, unsigned int mode)'),
  renameat2: lib.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)'),
  unlinkat: lib.func('int unlinkat(int dirfd, const char *path, int flags)'),
};

export interface SysError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

/** Builds the same shape Node's fs errors have. `errno` is positive here. */
export function sysError(errno: number, syscall: string, path?: string): SysError {
  let code: string;
  try {
    code = getSystemErrorName(-errno);
  } catch {
    code = `E${errno}`;
  }
  const text = String(c.strerror(errno) ?? 'unknown error').toLowerCase();
  const msg = `${code}: ${text}, ${syscall}${path !== undefined ? ` '${path}'` : ''}`;
  const err = new Error(msg) as SysError;
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}

function check(ret: number | bigint, syscall: string, path?: string): number {
  const n = Number(ret);
  if (n < 0) throw sysError(koffi.errno(), syscall, path);
  return n;
}

export function fanotifyInit(flags: number, eventFFlags: number): number {
  return check(c.fanotify_init(flags >>> 0, eventFFlags >>> 0), 'fanotify_init');
}

/** Marks `path` (relative to dirfd, or absolute), or with path null the object `dirfd` refers to. */
export function fanotifyMark(groupFd: number, flags: number, mask: number | bigint, dirfd: number, path: string | null): void {
  check(c.fanotify_mark(groupFd, flags >>> 0, BigInt(mask), dirfd, path), 'fanotify_mark', path ?? undefined);
}

/** fcntl with an int argument (or none). Returns the call's non-negative result. */
export function fcntl(fd: number, cmd: number, arg?: number, path?: string): number {
  const ret = arg === undefined ? c.fcntl(fd, cmd) : c.fcntl(fd, cmd, 'int', arg);
  return check(ret, 'fcntl', path);
}

export function fallocate(fd: number, mode: number, offset: number, len: number, path?: string): void {
  check(c.fallocate(fd, mode, BigInt(offset), BigInt(len)), 'fallocate', path);
}

/** Returns the attribute's value, or null when it is absent (ENODATA). */
export function fgetxattr(fd: number, name: string, path?: string): Buffer | null {
  let size = 256;
  for (;;) {
    const buf = Buffer.alloc(size);
    const n = Number(c.fgetxattr(fd, name, buf, size));
    if (n >= 0) return buf.subarray(0, n);
    const e = koffi.errno();
    if (e === ENODATA) return null;
    if (e !== ERANGE) throw sysError(e, 'fgetxattr', path);
    // Too small: ask for the exact size, then retry.
    const need = Number(c.fgetxattr(fd, name, null, 0));
    if (need < 0) {
      const e2 = koffi.errno();
      if (e2 === ENODATA) return null;
      throw sysError(e2, 'fgetxattr', path);
    }
    size = Math.max(need, size * 2);
  }
}

/** Like fgetxattr but by path, without opening the file (a scan must not raise open events). */
export function lgetxattr(path: string, name: string): Buffer | null {
  let size = 256;
  for (;;) {
    const buf = Buffer.alloc(size);
    const n = Number(c.lgetxattr(path, name, buf, size));
    if (n >= 0) return buf.subarray(0, n);
    const e = koffi.errno();
    if (e === ENODATA) return null;
    if (e !== ERANGE) throw sysError(e, 'lgetxattr', path);
    const need = Number(c.lgetxattr(path, name, null, 0));
    if (need < 0) {
      const e2 = koffi.errno();
      if (e2 === ENODATA) return null;
      throw sysError(e2, 'lgetxattr', path);
    }
    size = Math.max(need, size * 2);
  }
}

/** Like lgetxattr but follows symlinks: for /proc/self/fd/N of an O_PATH fd (fgetxattr there is EBADF). */
export function getxattr(path: string, name: string): Buffer | null {
  let size = 256;
  for (;;) {
    const buf = Buffer.alloc(size);
    const n = Number(c.getxattr(path, name, buf, size));
    if (n >= 0) return buf.subarray(0, n);
    const e = koffi.errno();
    if (e === ENODATA) return null;
    if (e !== ERANGE) throw sysError(e, 'getxattr', path);
    size *= 4;
  }
}

/**
 * Opens the object a file handle names (struct file_handle: u32 bytes, i32 type, bytes),
 * on the filesystem of mountFd. `what` names the object in errors.
 */
export function openByHandleAt(mountFd: number, handle: Buffer, flags: number, what?: string): number {
  return check(c.open_by_handle_at(mountFd, handle, flags), 'open_by_handle_at', what);
}

export const MAX_HANDLE_SZ = 128;

/** The file handle of `path` (struct file_handle bytes, as open_by_handle_at takes them). */
export function nameToHandleAt(path: string, flags = 0): { handle: Buffer; mountId: number } {
  const buf = Buffer.alloc(8 + MAX_HANDLE_SZ);
  buf.writeUInt32LE(MAX_HANDLE_SZ, 0);
  const mountId = [0];
  check(c.name_to_handle_at(-100 /* AT_FDCWD */, path, buf, mountId, flags), 'name_to_handle_at', path);
  return { handle: buf.subarray(0, 8 + buf.readUInt32LE(0)), mountId: mountId[0]! };
}

/**
 * The file handle of the file open on `fd`, a copy (the catalog keeps it); null when the
 * filesystem gives none. Through /proc/self/fd/N with AT_SYMLINK_FOLLOW: the magic link
 * leads to the inode itself, whatever its names are now.
 */
export function fileHandleOfFd(fd: number): Buffer | null {
  try {
    return Buffer.from(nameToHandleAt(`/proc/self/fd/${fd}`, 0x400 /* AT_SYMLINK_FOLLOW */).handle);
  } catch {
    return null;
  }
}

/** statfs(2) f_fsid as fanotify FID records carry it, spelled like fsidAt(): "1a2b3c4d:00000000". */
export function statfsFsid(path: string): string {
  const buf = Buffer.alloc(120); // struct statfs on x86_64/aarch64: f_fsid at offset 56
  check(c.statfs(path, buf), 'statfs', path);
  return fsidAt(buf, 56);
}

export function fsetxattr(fd: number, name: string, value: Buffer, path?: string, flags = 0): void {
  check(c.fsetxattr(fd, name, value, value.length, flags), 'fsetxattr', path);
}

/** Removes an attribute; absent already is fine. */
export function fremovexattr(fd: number, name: string, path?: string): void {
  const ret = c.fremovexattr(fd, name);
  if (ret < 0) {
    const e = koffi.errno();
    if (e !== ENODATA) throw sysError(e, 'fremovexattr', path);
  }
}

export interface Timespec {
  sec: number | bigint;
  nsec: number | bigint;
}

export const UTIME_NOW = (1 << 30) - 1;
export const UTIME_OMIT = (1 << 30) - 2;

/** Sets atime and mtime exactly (nanoseconds); either may be UTIME_OMIT via nsec. */
export function futimens(fd: number, atime: Timespec, mtime: Timespec, path?: string): void {
  const b = Buffer.alloc(32);
  b.writeBigInt64LE(BigInt(atime.sec), 0);
  b.writeBigInt64LE(BigInt(atime.nsec), 8);
  b.writeBigInt64LE(BigInt(mtime.sec), 16);
  b.writeBigInt64LE(BigInt(mtime.nsec), 24);
  check(c.futimens(fd, b), 'futimens', path);
}

/** A nanosecond count (e.g. fstat's bigint mtimeNs) as a Timespec. */
export function nsToTimespec(ns: bigint): Timespec {
  const sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) return { sec: sec - 1n, nsec: nsec + 1_000_000_000n };
  return { sec, nsec };
}

/** read(2) into buf; returns the byte count, or -1 on EAGAIN (nonblocking fd drained). */
export function readNb(fd: number, buf: Buffer): number {
  const n = Number(c.read(fd, buf, buf.length));
  if (n >= 0) return n;
  const e = koffi.errno();
  if (e === EAGAIN) return -1;
  throw sysError(e, 'read');
}

export function writeAll(fd: number, buf: Buffer, syscall = 'write'): void {
  const n = Number(c.write(fd, buf, buf.length));
  if (n < 0) throw sysError(koffi.errno(), syscall);
  if (n !== buf.length) throw new Error(`${syscall}: short write ${n}/${buf.length}`);
}

export interface PollHandle {
  /** Watches again after stop() (libuv polls level-triggered: stop while a read is pending). */
  start(): void;
  stop(): void;
  close(): void;
  ref(): void;
  unref(): void;
}

/** Calls cb whenever fd is readable (libuv poll). Keep the returned handle referenced. */
export function pollReadable(fd: number, cb: () => void): PollHandle {
  const opts = { readable: true, writable: false, disconnect: false };
  const h = koffi.node.poll(fd, opts, () => cb());
  return {
    start: () => h.start(opts, () => cb()),
    stop: () => h.stop(),
    close: () => h.close(),
    ref: () => h.ref(),
    unref: () => h.unref(),
  };
}

export const EAGAIN = 11;
export const ENODATA = 61;
export const ERANGE = 34;
export const ESTALE = 116;

// --- *at calls for creating files beneath a directory fd (src/import/beneath.ts) ---
const SYS_openat2 = 437; // x86_64 and aarch64 (asm-generic) alike

/** openat2(2): `resolve` is RESOLVE_* flags (RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS...). Returns the fd. */
export function openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
  const how = Buffer.alloc(24); // struct open_how { u64 flags; u64 mode; u64 resolve; }
  how.writeBigUInt64LE(BigInt(flags >>> 0), 0);
  how.writeBigUInt64LE(BigInt(mode), 8);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  return check(c.syscall_openat2(SYS_openat2, dirfd, path, how, how.length), 'openat2', path);
}

export function mkdirat(dirfd: number, path: string, mode: number): void {
  check(c.mkdirat(dirfd, path, mode), 'mkdirat', path);
}

/** flags: RENAME_NOREPLACE 1, RENAME_EXCHANGE 2. */
export function renameat2(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): void {
  check(c.renameat2(olddirfd, oldpath, newdirfd, newpath, flags), 'renameat2', newpath);
}

/** flags: AT_REMOVEDIR 0x200 for a directory. */
export function unlinkat(dirfd: number, path: string, flags = 0): void {
  check(c.unlinkat(dirfd, path, flags), 'unlinkat', path);
}
