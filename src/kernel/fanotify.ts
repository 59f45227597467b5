// fanotify: group creation, inode marks, event decoding, responses.
// Debian's <linux/fanotify.h> is 6.1-era; the pre-content constants are defined here
// (values measured on 6.18: docs kernel-facts.md).
//
// Invariants:
// - respond() accepts only the errnos the kernel takes in FAN_DENY_ERRNO; any other
//   errno makes the response write fail with EINVAL and leaves the reader blocked forever.
// - decodeEvents() never throws on a short or odd buffer: it stops at the first
//   incomplete record (the kernel never splits events across reads).
import { readFile } from 'node:fs/promises';
import { constants as osc } from 'node:os';
import { fanotifyInit, fanotifyMark, writeAll } from './libc.js';

export const FAN_CLOEXEC = 0x01;
export const FAN_NONBLOCK = 0x02;
export const FAN_CLASS_NOTIF = 0x00;
export const FAN_CLASS_CONTENT = 0x04;
export const FAN_CLASS_PRE_CONTENT = 0x08;
export const FAN_UNLIMITED_QUEUE = 0x10;
export const FAN_UNLIMITED_MARKS = 0x20;
export const FAN_REPORT_FD_ERROR = 0x2000;
export const FAN_REPORT_FID = 0x200;
export const FAN_REPORT_DIR_FID = 0x400;
export const FAN_REPORT_NAME = 0x800;
export const FAN_REPORT_TARGET_FID = 0x1000;
export const FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME;
/** Parent dir + name, and the child's own FID on DELETE/RENAME too (5.17+). */
export const FAN_REPORT_DFID_NAME_TARGET = FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TARGET_FID;

export const FAN_MARK_ADD = 0x01;
export const FAN_MARK_REMOVE = 0x02;
export const FAN_MARK_DONT_FOLLOW = 0x04;
export const FAN_MARK_IGNORED_MASK = 0x20;
export const FAN_MARK_IGNORED_SURV_MODIFY = 0x40;
export const FAN_MARK_FLUSH = 0x80;
/** Not pinning the inode: the mark goes when the inode is evicted (5.19+). */
export const FAN_MARK_EVICTABLE = 0x200;
/** `mask` is the ignore mask (6.0+); with SURV_MODIFY it survives writes. */
export const FAN_MARK_IGNORE = 0x400;
export const FAN_MARK_INODE = 0x00;
export const FAN_MARK_MOUNT = 0x10;
export const FAN_MARK_FILESYSTEM = 0x100;

export const FAN_ACCESS = 0x01;
export const FAN_MODIFY = 0x02;
export const FAN_ATTRIB = 0x04;
export const FAN_CLOSE_WRITE = 0x08;
export const FAN_OPEN = 0x20;
export const FAN_MOVED_FROM = 0x40;
export const FAN_MOVED_TO = 0x80;
export const FAN_CREATE = 0x100;
export const FAN_DELETE = 0x200;
export const FAN_DELETE_SELF = 0x400;
export const FAN_Q_OVERFLOW = 0x4000;
export const FAN_OPEN_PERM = 0x10000;
export const FAN_ACCESS_PERM = 0x20000;
export const FAN_OPEN_EXEC_PERM = 0x40000;
export const FAN_PRE_ACCESS = 0x100000;
export const FAN_RENAME = 0x10000000;
export const FAN_ONDIR = 0x40000000;

export const FAN_ALLOW = 0x01;
export const FAN_DENY = 0x02;
export const FAN_NOFD = -1;
export const FANOTIFY_METADATA_VERSION = 3;
export const FAN_EVENT_INFO_TYPE_RANGE = 6;

const O_RDWR = 0o2;
const O_LARGEFILE = 0o100000;
const O_CLOEXEC = 0o2000000;

/** The errnos FAN_DENY_ERRNO accepts (6.14+). */
export const DENY_ERRNOS: ReadonlySet<string> = new Set(['EPERM', 'EIO', 'EAGAIN', 'EBUSY', 'ETXTBSY', 'ENOSPC', 'EDQUOT']);

export type GroupMode = 'pre-content' | 'content';

/** Pre-content: ranged events (FAN_PRE_ACCESS). Content: FAN_OPEN_PERM only (fallback). */
export function createGroup(mode: GroupMode): number {
  const cls = mode === 'pre-content' ? FAN_CLASS_PRE_CONTENT : FAN_CLASS_CONTENT;
  // Event fds are O_RDWR so the handler can pwrite the recalled bytes through them;
  // O_CLOEXEC so children we spawn never inherit one.
  return fanotifyInit(cls | FAN_NONBLOCK | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, O_RDWR | O_LARGEFILE | O_CLOEXEC);
}

/**
 * The mask a released file gets in each mode. Pre-content adds the open events: an
 * exec open must be filled whole before execve denies writers (after that the kernel
 * cannot create our O_RDWR event fd: ETXTBSY), and sparse-aware copiers need the whole
 * file at open. Content mode fills at FAN_OPEN_PERM, which exec raises too.
 */
export function releasedMask(mode: GroupMode): number {
  return mode === 'pre-content' ? FAN_PRE_ACCESS | FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM : FAN_OPEN_PERM;
}

/** Inode mark on the file `fileFd` refers to (the fd may be O_RDONLY). */
export function addInodeMark(groupFd: number, fileFd: number, mask: number): void {
  fanotifyMark(groupFd, FAN_MARK_ADD | FAN_MARK_INODE, mask, fileFd, null);
}

/** Removes the whole inode mark. ENOENT (no mark) is not an error. */
export function removeInodeMark(groupFd: number, fileFd: number, mask: number = FAN_PRE_ACCESS | FAN_OPEN_PERM | FAN_ACCESS_PERM | FAN_OPEN_EXEC_PERM): void {
  try {
    fanotifyMark(groupFd, FAN_MARK_REMOVE | FAN_MARK_INODE, mask, fileFd, null);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Ignore mark on the inode behind fileFd: our group gets none of `mask` from it; evictable: it pins nothing. */
export function addIgnoreMark(groupFd: number, fileFd: number, mask: number): void {
  fanotifyMark(groupFd, FAN_MARK_ADD | FAN_MARK_INODE | FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY | FAN_MARK_EVICTABLE, mask, fileFd, null);
}

/** Removes the inode's ignore mark; none: not an error. True when one was removed. */
export function removeIgnoreMark(groupFd: number, fileFd: number, mask: number): boolean {
  try {
    fanotifyMark(groupFd, FAN_MARK_REMOVE | FAN_MARK_INODE | FAN_MARK_IGNORE, mask, fileFd, null);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return false;
  }
}

/** Ignore marks the group holds now, from its fdinfo (one line per mark). */
export async function countIgnoreMarks(groupFd: number): Promise<number> {
  const text = await readFile(`/proc/self/fdinfo/${groupFd}`, 'latin1');
  let n = 0;
  for (const m of text.matchAll(/ignored_mask:([0-9a-f]+)/g)) if (m[1] !== '0') n++;
  return n;
}

/** Removes every inode mark of the group (filesystem and mount marks stay). */
export function flushInodeMarks(groupFd: number): void {
  fanotifyMark(groupFd, FAN_MARK_FLUSH, 0, -100, null);
}

export function addPathMark(groupFd: number, path: string, mask: number, flags = FAN_MARK_INODE): void {
  fanotifyMark(groupFd, FAN_MARK_ADD | flags, mask, -100 /* AT_FDCWD */, path);
}

export interface FanEvent {
  mask: number;
  /** The event's own fd (O_RDWR), or FAN_NOFD / a negative errno with FAN_REPORT_FD_ERROR. */
  fd: number;
  pid: number;
  /** From the RANGE info record (pre-content events); absent for open events. */
  range?: { offset: number; count: number };
}

/** Decodes every complete event in buf[0..len). */
export function decodeEvents(buf: Buffer, len: number): FanEvent[] {
  const out: FanEvent[] = [];
  let off = 0;
  while (off + 24 <= len) {
    const eventLen = buf.readUInt32LE(off);
    const metaLen = buf.readUInt16LE(off + 6);
    if (eventLen < 24 || off + eventLen > len) break;
    const ev: FanEvent = {
      mask: Number(buf.readBigUInt64LE(off + 8)),
      fd: buf.readInt32LE(off + 16),
      pid: buf.readInt32LE(off + 20),
    };
    let info = off + metaLen;
    const end = off + eventLen;
    while (info + 4 <= end) {
      const type = buf.readUInt8(info);
      const ilen = buf.readUInt16LE(info + 2);
      if (ilen < 4 || info + ilen > end) break;
      if (type === FAN_EVENT_INFO_TYPE_RANGE && ilen >= 24) {
        ev.range = { offset: Number(buf.readBigUInt64LE(info + 8)), count: Number(buf.readBigUInt64LE(info + 16)) };
      }
      info += ilen;
    }
    out.push(ev);
    off += eventLen;
  }
  return out;
}

/** FAN_DENY_ERRNO(code); throws for an errno the kernel would refuse. */
export function denyErrno(code: string): number {
  if (!DENY_ERRNOS.has(code)) throw new Error(`FAN_DENY_ERRNO: ${code} is not accepted by the kernel`);
  const n = (osc.errno as Record<string, number>)[code];
  if (n === undefined) throw new Error(`FAN_DENY_ERRNO: unknown errno ${code}`);
  return (FAN_DENY | (n << 24)) >>> 0;
}

export const FAN_DENY_EIO = denyErrno('EIO');

/** Answers one permission event. `response` is FAN_ALLOW, FAN_DENY or denyErrno(...). */
export function respond(groupFd: number, fd: number, response: number): void {
  const errBits = response >>> 24;
  if (errBits !== 0) {
    const ok = [...DENY_ERRNOS].some((c) => (osc.errno as Record<string, number>)[c] === errBits);
    if (!ok || (response & 0xffffff) !== FAN_DENY) throw new Error(`fanotify response 0x${response.toString(16)} would be refused`);
  }
  const b = Buffer.alloc(8);
  b.writeInt32LE(fd, 0);
  b.writeUInt32LE(response >>> 0, 4);
  writeAll(groupFd, b, 'fanotify response');
}
