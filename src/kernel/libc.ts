// The only koffi importer: thin libc bindings for what Node's fs lacks (fanotify,
// leases, fallocate, xattrs, nanosecond futimens, nonblocking read on the group fd,
// the bind mount of a fileset's backing).
//
// Invariants:
// - errno is read with koffi.errno() immediately after the failing call, before any
//   other JS that could call into libc, and turned into a Node-style error:
//   `code` ('EAGAIN'), `errno` (negative, like Node's fs errors), `syscall`, `path`.
// - Every binding is synchronous: these calls do not block (the group fd is
//   FAN_NONBLOCK; xattr/fallocate/futimens are metadata calls), except waitReadable(),
//   which is for a dedicated thread (the recall event thread), never the event loop.
import koffi from 'koffi';
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';
import { fsidAt } from './fanotify-fid.js';

const lib = koffi.load('libc.so.6');
const iovecT = koffi.struct('tier_iovec', { iov_base: 'void *', iov_len: 'size_t' });
koffi.struct('tier_msghdr', {
  msg_name: 'void *',
  msg_namelen: 'uint32',
  msg_iov: koffi.pointer(iovecT),
  msg_iovlen: 'size_t',
  msg_control: 'void *',
  msg_controllen: 'size_t',
  msg_flags: 'int',
});

const c = {
  fanotify_init: lib.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)'),
  fanotify_mark: lib.func(
    'int fanotify_mark(int fanotify_fd, unsigned int flags, uint64_t mask, int dirfd, const char *pathname)',
  ),
  fcntl: lib.func('int fcntl(int fd, int cmd, ...)'),
  fallocate: lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
  lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)'),
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
  mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)'),
  umount2: lib.func('int umount2(const char *target, int flags)'),
  syscall: lib.func('long syscall(long number, ...)'),
  socket: lib.func('int socket(int domain, int type, int protocol)'),
  sendmsg: lib.func('intptr_t sendmsg(int fd, const tier_msghdr *msg, int flags)'),
  close: lib.func('int close(int fd)'),
  poll: lib.func('int poll(_Inout_ void *fds, unsigned long nfds, int timeout)'),
  sched_yield: lib.func('int sched_yield(void)'),
  madvise: lib.func('int madvise(uintptr_t addr, size_t len, int advice)'),
  pthread_sigmask: lib.func('int pthread_sigmask(int how, const void *set, void *oldset)'),
  mkdirat: lib.func('int mkdirat(int dirfd, const char *path, unsigned int mode)'),
  renameat2: lib.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)'),
  unlinkat: lib.func('int unlinkat(int dirfd, const char *path, int flags)'),
  // The scan's per-entry calls (src/walk/walk.ts): fixed prototypes, no variadic marshalling.
  getdents64: lib.func('intptr_t getdents64(int fd, _Out_ void *buf, size_t count)'),
  statx: lib.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, _Out_ void *buf)'),
  getxattrat: lib.func('syscall', 'long', ['long', 'int', 'const char *', 'unsigned int', 'const char *', 'void *', 'size_t']),
};

// Same numbers on x86_64 and arm64 (the generic table): no libc wrappers in Debian's glibc.
const SYS_pidfd_open = 434;
const SYS_pidfd_getfd = 438;

/** A pidfd for `pid` (Linux 5.3+). */
export function pidfdOpen(pid: number): number {
  return check(c.syscall(SYS_pidfd_open, 'int', pid, 'unsigned int', 0), 'pidfd_open');
}

/** A duplicate of fd `targetFd` of the process behind `pidfd`, in this process (O_CLOEXEC; Linux 5.6+, ptrace rights). */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return check(c.syscall(SYS_pidfd_getfd, 'int', pidfd, 'int', targetFd, 'unsigned int', 0), 'pidfd_getfd');
}

/**
 * One datagram to the unix socket `path` ('@name': abstract) carrying `fds` as SCM_RIGHTS
 * (the systemd notify protocol: sd_notify with FDSTORE=1). Node's net has no datagram
 * unix sockets nor fd passing outside child IPC.
 */
export function sendDatagramWithFds(path: string, text: string, fds: number[]): void {
  const AF_UNIX = 1;
  const SOCK_DGRAM = 2;
  const SOCK_CLOEXEC = 0o2000000;
  const name = Buffer.alloc(110);
  name.writeUInt16LE(AF_UNIX, 0);
  const abstract = path.startsWith('@');
  const bytes = Buffer.from(abstract ? path.slice(1) : path);
  if (bytes.length > 106) throw new Error(`notify socket path too long: ${path}`);
  bytes.copy(name, abstract ? 3 : 2);
  const namelen = 2 + bytes.length + 1; // abstract: leading NUL; path: trailing NUL
  const body = Buffer.from(text);
  // cmsghdr { size_t len; int level; int type; int fds[] } padded to 8 bytes.
  const dataLen = 4 * fds.length;
  const ctl = Buffer.alloc(fds.length ? 16 + Math.ceil(dataLen / 8) * 8 : 0);
  if (fds.length) {
    ctl.writeBigUInt64LE(BigInt(16 + dataLen), 0);
    ctl.writeInt32LE(1 /* SOL_SOCKET */, 8);
    ctl.writeInt32LE(1 /* SCM_RIGHTS */, 12);
    fds.forEach((fd, i) => ctl.writeInt32LE(fd, 16 + 4 * i));
  }
  const s = check(c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 'socket');
  try {
    const msg = {
      msg_name: name,
      msg_namelen: namelen,
      msg_iov: [{ iov_base: body, iov_len: body.length }],
      msg_iovlen: 1,
      msg_control: fds.length ? ctl : null,
      msg_controllen: ctl.length,
      msg_flags: 0,
    };
    check(c.sendmsg(s, msg, 0x4000 /* MSG_NOSIGNAL */), 'sendmsg', path);
  } finally {
    c.close(s);
  }
}

/** close(2) for an fd that Node does not own (e.g. a pidfd). */
export function closeFd(fd: number): void {
  check(c.close(fd), 'close');
}

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

export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

/** lseek(SEEK_DATA|SEEK_HOLE): the next data or hole offset at or after `offset`; null for ENXIO (none before EOF). Raises no fanotify event. */
export function seekDataHole(fd: number, offset: number, whence: typeof SEEK_DATA | typeof SEEK_HOLE, path?: string): number | null {
  const ret = Number(c.lseek(fd, BigInt(offset), whence));
  if (ret >= 0) return ret;
  const errno = koffi.errno();
  if (errno === 6 /* ENXIO */) return null;
  throw sysError(errno, whence === SEEK_DATA ? 'lseek(SEEK_DATA)' : 'lseek(SEEK_HOLE)', path);
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

const SYS_openat2 = 437; // one number on every architecture (the unified table, Linux 5.6+)
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;

/**
 * openat2(2): opens `path` relative to dirfd under the RESOLVE_* restrictions (struct
 * open_how {u64 flags; u64 mode; u64 resolve}). `what` names the file in errors. Synchronous:
 * callers use it with O_PATH, which raises no fanotify event and breaks no lease.
 */
export function openat2(dirfd: number, path: string, flags: number, resolve: number, what?: string, mode = 0): number {
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(flags >>> 0), 0);
  how.writeBigUInt64LE(BigInt(mode), 8);
  how.writeBigUInt64LE(BigInt(resolve >>> 0), 16);
  return check(c.syscall(SYS_openat2, 'int', dirfd, 'const char *', path, 'void *', how, 'size_t', 24), 'openat2', what ?? path);
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

const EINTR = 4;

/**
 * Blocks the calling thread until fd is readable or timeoutMs passed (poll(2)); false on
 * timeout or EINTR. Only for a thread of its own: it stops that thread's event loop.
 */
export function waitReadable(fd: number, timeoutMs: number): boolean {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(1 /* POLLIN */, 4);
  const n = Number(c.poll(pfd, 1, timeoutMs));
  if (n >= 0) return n > 0;
  const e = koffi.errno();
  if (e === EINTR) return false;
  throw sysError(e, 'poll');
}

/** sched_yield(2): lets another runnable task on this CPU go first (a spinning thread's manners). */
export function schedYield(): void {
  c.sched_yield();
}

/**
 * malloc_trim(3): glibc gives the free pages of every malloc arena back to the kernel. Free
 * memory stays in the process otherwise (the arenas of threads that ended included): a
 * reconcile pass's walk threads and batches left ~20 MB of RSS behind (reconcile-loop.ts).
 */
export function mallocTrim(): void {
  trim ??= bindTrim();
  trim?.(0);
}
let trim: ((pad: number) => number) | null | undefined;
/** glibc only: a libc without it (musl) costs this saving, never the import of this module. */
function bindTrim(): ((pad: number) => number) | null {
  try {
    return lib.func('int malloc_trim(size_t pad)') as (pad: number) => number;
  } catch {
    return null;
  }
}

/** Where the hasher thread loads koffi from (kernel/sha256-native.ts): the module this one imported. */
export function koffiPath(): string {
  return createRequire(import.meta.url).resolve('koffi');
}

const HUGE_PAGE = 2 * 1024 * 1024;
const MADV_HUGEPAGE = 14;

/**
 * madvise(MADV_HUGEPAGE) over the 2 MiB-aligned part of `b`, so memory not yet touched is
 * faulted in as transparent huge pages (THP "madvise" mode, Debian's default): the hasher's
 * run buffers (chunks/slab-pool.ts), where a TLB miss per 4 KiB page cost SHA-256 a quarter
 * of its speed. Returns the offset in `b` of its first aligned byte. Advice only: a kernel
 * that refuses it (THP off) changes nothing, and no error is thrown.
 */
export function adviseHugePages(b: Uint8Array): number {
  const addr = koffi.address(b);
  const skip = Number((BigInt(HUGE_PAGE) - (addr % BigInt(HUGE_PAGE))) % BigInt(HUGE_PAGE));
  const len = Math.floor((b.length - skip) / HUGE_PAGE) * HUGE_PAGE;
  if (len > 0) c.madvise(addr + BigInt(skip), len, MADV_HUGEPAGE);
  return skip;
}

/** Whether `b`'s first byte lies at an address that is a multiple of `to` (O_DIRECT reads). */
export function addressAligned(b: Uint8Array, to: number): boolean {
  return koffi.address(b) % BigInt(to) === 0n;
}

/** Blocks `signo` in the calling thread only (pthread_sigmask SIG_BLOCK), so the kernel delivers it to another thread. */
export function blockSignalInThread(signo: number): void {
  const set = Buffer.alloc(128); // sigset_t
  set[(signo - 1) >> 3]! |= 1 << ((signo - 1) & 7);
  const r = Number(c.pthread_sigmask(0 /* SIG_BLOCK */, set, null));
  if (r !== 0) throw sysError(r, 'pthread_sigmask');
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

export const MS_BIND = 0x1000;
export const MS_PRIVATE = 1 << 18;
export const MNT_DETACH = 2;
export const UMOUNT_NOFOLLOW = 8;

/** mount(2) without a filesystem type or data: binds and propagation changes only. */
export function mountFlags(source: string | null, target: string, flags: number): void {
  check(c.mount(source, target, null, flags, null), 'mount', target);
}

/** umount2(2); `flags` e.g. MNT_DETACH | UMOUNT_NOFOLLOW. */
export function umount2(target: string, flags: number): void {
  check(c.umount2(target, flags), 'umount2', target);
}

export const EAGAIN = 11;
export const ENODATA = 61;
export const ERANGE = 34;
export const ESTALE = 116;

// --- *at calls for creating files beneath a directory fd (src/import/dir-cursor.ts) ---
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

// --- the scan's directory walk (src/walk/walk.ts): one call per entry, relative to a directory fd ---

/** getdents64(2) into buf: bytes filled (0 at the end). Records: u64 ino, i64 off, u16 reclen, u8 type, name NUL. */
export function getdents64(fd: number, buf: Buffer, path?: string): number {
  return check(c.getdents64(fd, buf, buf.length), 'getdents64', path);
}

export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_NO_AUTOMOUNT = 0x800;
export const STATX_BASIC_STATS = 0x7ff;

/** statx(2) of `name` in directory fd `dirfd` into buf (256 bytes), never following a symlink or an automount. */
export function statxAt(dirfd: number, name: string, buf: Buffer, path?: string): void {
  check(c.statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, buf), 'statx', path);
}

const AT_EMPTY_PATH = 0x1000;

/** statx(2) of an open fd into buf (256 bytes, struct statx): no Stats object on a hot path. */
export function fstatxInto(fd: number, buf: Buffer): void {
  check(c.statx(fd, '', AT_EMPTY_PATH, STATX_BASIC_STATS, buf), 'statx');
}

const SYS_getxattrat = 464; // Linux 6.13+, one number on every architecture (the unified table)
let noGetxattrat = false;
// struct xattr_args { u64 value; u32 size; u32 flags }: the value buffer's address is fixed
// once (a Buffer's backing store does not move while it is referenced).
const xattrVal = Buffer.alloc(4096);
const xattrArgs = Buffer.alloc(16);
xattrArgs.writeBigUInt64LE(koffi.address(xattrVal), 0);
xattrArgs.writeUInt32LE(xattrVal.length, 8);

/**
 * The attribute `attr` of `name` in directory fd `dirfd` (a symlink's own, never its
 * target's), or null when absent: getxattrat(2) relative to the fd; before Linux 6.13,
 * lgetxattr of `/proc/self/fd/DIRFD/NAME`. No open of the file, so no fanotify event.
 */
export function getxattrAt(dirfd: number, name: string, attr: string, path?: string): Buffer | null {
  if (!noGetxattrat) {
    const n = Number(c.getxattrat(SYS_getxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, attr, xattrArgs, 16));
    if (n >= 0) return Buffer.from(xattrVal.subarray(0, n));
    const e = koffi.errno();
    if (e === ENODATA) return null;
    if (e === ENOSYS) noGetxattrat = true;
    else if (e !== ERANGE) throw sysError(e, 'getxattrat', path);
  }
  return lgetxattr(`/proc/self/fd/${dirfd}/${name}`, attr);
}

const ENOSYS = 38;
