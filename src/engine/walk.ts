// The synchronous core of the scan (scan.ts wraps it for the event loop): one fileset root,
// depth first, FileFacts yielded one by one, memory flat (one open directory at a time and
// the directory paths still to visit).
//
// Rules:
// - Every directory is opened beneath the root fd (openat2: no symlink in any component, no
//   mount crossed, kernel/beneath.ts) as a readable fd; its entries come from getdents64 on
//   that fd and are looked at with statx/getxattrat *relative to it*: a name with no '/' is
//   looked up inside that directory inode, whatever a user renames or swaps meanwhile.
// - A few calls per entry (find makes one): getdents64 gives the type, so symlinks, FIFOs,
//   sockets and devices cost nothing; statx (never following a symlink or an automount)
//   only for directories and regular files; the record (getxattrat, no open: no fanotify
//   event) only for regular files the globs keep.
// - Never follows symlinks, never leaves the root's filesystem (st_dev), regular files only,
//   include/exclude globs relative to the root, dotfiles included, excluded directories pruned.
// - Errors are reported (path + op), never fatal, except a root that is not a directory.
import { closeSync, fstatSync, lstatSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { dirFdBeneath, openRootFd } from '../kernel/beneath.js';
import { getdents64, getxattrAt, statxAt } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE } from './state-record.js';
import { deriveState, type FileFacts } from './facts.js';
import { groupName, userName } from './users.js';

export interface ScanError {
  path: string;
  op: string;
  error: Error;
}

export type Matcher = (s: string) => boolean;

export interface WalkFilter {
  report: (e: ScanError) => void;
  included: Matcher;
  excluded: Matcher;
  pruned: Matcher;
}

const DT_UNKNOWN = 0;
const DT_DIR = 4;
const DT_REG = 8;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const TWO32 = 4294967296;

// struct statx, read as 32-bit words (all fields used are 4-byte aligned).
const W_UID = 5;
const W_GID = 6;
const W_MODE = 7; // low 16 bits
const W_INO = 8;
const W_SIZE = 10;
const W_BLOCKS = 12;
const W_ATIME = 16; // i64 sec, u32 nsec
const W_CTIME = 24;
const W_MTIME = 28;
const W_DEV_MAJOR = 34;
const W_DEV_MINOR = 35;

/** glibc's makedev: what Node's lstat reports as st_dev. */
export function makedev(major: number, minor: number): number {
  // (major & 0xfff) << 8 | (minor & 0xff) | (minor >> 8) << 20 | (major >> 12) << 44, disjoint bits
  return (major & 0xfff) * 256 + (minor & 0xff) + Math.floor(minor / 256) * 1048576 + Math.floor(major / 4096) * 2 ** 44;
}

/** A timestamp as the scan's FileFacts carry it: ms (as `ns / 1e6n` + remainder) and ns as a decimal string. */
function timeOf(w: Uint32Array, i: number): { ms: number; ns: string } {
  const sec = (w[i + 1]! | 0) * TWO32 + w[i]!;
  const nsec = w[i + 2]!;
  if (sec >= 0) {
    const ms = sec * 1000 + Math.floor(nsec / 1e6) + (nsec % 1e6) / 1e6;
    return { ms, ns: sec === 0 ? String(nsec) : `${sec}${String(nsec).padStart(9, '0')}` };
  }
  const ns = BigInt(sec) * 1_000_000_000n + BigInt(nsec);
  return { ms: Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6, ns: ns.toString() };
}

/** Facts of one regular file from its statx words and record. */
function factsOf(w: Uint32Array, root: string, rel: string, abs: string, name: string, raw: Buffer | null): FileFacts {
  const record = decodeRecord(raw);
  const size = w[W_SIZE]! + w[W_SIZE + 1]! * TWO32;
  const a = timeOf(w, W_ATIME);
  const m = timeOf(w, W_MTIME);
  const c = timeOf(w, W_CTIME);
  const uid = w[W_UID]!;
  const gid = w[W_GID]!;
  return {
    path: rel,
    absPath: abs,
    name,
    root,
    size,
    blocks: w[W_BLOCKS]! + w[W_BLOCKS + 1]! * TWO32,
    atimeMs: a.ms,
    mtimeMs: m.ms,
    ctimeMs: c.ms,
    ctimeNs: c.ns,
    mtimeNs: m.ns,
    mode: w[W_MODE]! & 0xffff,
    uid,
    gid,
    owner: userName(uid),
    group: groupName(gid),
    dev: makedev(w[W_DEV_MAJOR]!, w[W_DEV_MINOR]!),
    ino: w[W_INO]! + w[W_INO + 1]! * TWO32,
    state: deriveState(record, { size, mtimeNs: m.ns }),
    pinned: record?.pinned ?? false,
    record,
  };
}

/** Entries looked at between two pause points (a null yielded: the caller may let its event loop run). */
const PAUSE_EVERY = 4096;

/**
 * Every regular file beneath `root` that the filter keeps, as FileFacts, depth first; a
 * null every PAUSE_EVERY entries (a tree of symlinks or pruned names yields no file for long).
 */
export function* walkRoot(root: string, f: WalkFilter): Generator<FileFacts | null> {
  let seen = 0;
  const rootSt = lstatSync(root, { bigint: true });
  if (!rootSt.isDirectory()) throw new Error(`fileset root ${root}: not a directory (symlinks are not followed)`);
  const prefix = normalize(root).replace(/\/+$/, ''); // absPath = prefix + '/' + rel (join's result)
  const rootFd = openRootFd(root);
  const dents = Buffer.alloc(64 * 1024);
  const stBuf = Buffer.alloc(256);
  const w = new Uint32Array(stBuf.buffer, stBuf.byteOffset, 64);
  try {
    const rootDev = Number(fstatSync(rootFd, { bigint: true }).dev);
    const sameFs = () => makedev(w[W_DEV_MAJOR]!, w[W_DEV_MINOR]!) === rootDev;
    // Only directory paths wait here; files stream.
    const pending: string[] = [''];
    while (pending.length > 0) {
      const relDir = pending.pop()!;
      const absDir = relDir === '' ? root : join(root, relDir);
      let fd: number;
      try {
        fd = dirFdBeneath(rootFd, relDir === '' ? '.' : relDir, absDir);
      } catch (e) {
        f.report({ path: absDir, op: 'open', error: e as Error }); // e.g. swapped for a symlink since listed
        continue;
      }
      try {
        for (;;) {
          let n: number;
          try {
            n = getdents64(fd, dents, absDir);
          } catch (e) {
            f.report({ path: absDir, op: 'readdir', error: e as Error });
            break;
          }
          if (n === 0) break;
          for (let off = 0; off < n; ) {
            if (++seen % PAUSE_EVERY === 0) yield null;
            const type = dents[off + 18]!;
            const start = off + 19;
            off += dents.readUInt16LE(off + 16);
            if (type !== DT_REG && type !== DT_DIR && type !== DT_UNKNOWN) continue; // symlinks, FIFOs, sockets, devices
            let end = start;
            while (dents[end] !== 0) end++;
            if (dents[start] === 46 && (end === start + 1 || (end === start + 2 && dents[start + 1] === 46))) continue; // . and ..
            const name = dents.toString('utf8', start, end);
            const rel = relDir === '' ? name : `${relDir}/${name}`;
            if (type === DT_DIR ? f.pruned(rel) : type === DT_REG && !(f.included(rel) && !f.excluded(rel))) continue;
            try {
              statxAt(fd, name, stBuf); // its error names no path: the report does
            } catch (e) {
              f.report({ path: join(absDir, name), op: 'lstat', error: e as Error });
              continue;
            }
            if (!sameFs()) continue; // another filesystem mounted here
            const fmt = w[W_MODE]! & S_IFMT;
            if (fmt === S_IFDIR) {
              if (type === DT_DIR || !f.pruned(rel)) pending.push(rel);
            } else if (fmt === S_IFREG && (type === DT_REG || (f.included(rel) && !f.excluded(rel)))) {
              const abs = `${prefix}/${rel}`;
              let facts: FileFacts;
              try {
                facts = factsOf(w, root, rel, abs, name, getxattrAt(fd, name, XATTR_STATE, abs));
              } catch (e) {
                f.report({ path: abs, op: 'lgetxattr', error: e as Error });
                continue;
              }
              yield facts;
            }
          }
        }
      } finally {
        closeSync(fd);
      }
    }
  } finally {
    closeSync(rootFd);
  }
}
