// The synchronous core of the scan, run in a worker thread (engine/walk-worker.ts; scan.ts turns its
// batches into FileFacts on the main thread, so the syscalls of one batch overlap the
// planning of the previous one): one fileset root, depth first, files packed in batches of
// fixed-size words plus name and record bytes, memory flat (one open directory at a time,
// the directory paths still to visit, and a bounded number of batches in flight).
//
// Rules:
// - Every directory is opened beneath the root fd (openat2: no symlink in any component, no
//   mount crossed, kernel/beneath.ts) as a readable fd; its entries come from getdents64 on
//   that fd and are looked at with statx/getxattrat *relative to it*: a name with no '/' is
//   looked up inside that directory inode, whatever a user renames or swaps meanwhile.
// - A few calls per entry (find makes one): getdents64 gives the type, so symlinks, FIFOs,
//   sockets and devices cost nothing; statx (never following a symlink or an automount)
//   only for directories and regular files the globs keep; the record (getxattrat, no open:
//   no fanotify event) only for regular files.
// - Never follows symlinks, never leaves the root's filesystem (st_dev), regular files only,
//   include/exclude globs relative to the root, dotfiles included, excluded directories pruned.
// - Errors travel in the batch (path + op + message), never fatal, except a root that is
//   not a directory (thrown).
// - Parts (scan.ts runs one walk per core): every part lists every directory, and looks at
//   the files of the directories it owns (a hash of the directory's relative path), so the
//   statx + getxattrat of the files, the bulk of the work, is split without any exchange
//   between threads; the errors of a directory are reported by its owner alone. A directory
//   whose st_nlink is 2 has no subdirectory (find's leaf optimisation; ext4 and xfs count
//   them, 1 means unknown): only its owner lists it. A subdirectory made after that statx
//   is as new as a file made after its directory was listed: the walk may miss it.
// - Select (a policy run, engine/walk-worker.ts): each file is decided in the walk, on a FileView of
//   its statx (file-view.ts); a file no rule acts on (unmatched, keep) is only counted: no
//   record read unless a condition asks for state or pinned, nothing packed. The files that
//   are packed carry the deciding rule's index.
import { closeSync, fstatSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { dirFdBeneath, openRootFd } from '../kernel/beneath.js';
import { closeFd, getdents64, getxattrAt, statxAt } from '../kernel/libc.js';
import { XATTR_STATE } from '../record/state-record.js';
import { FileView } from './file-view.js';

export type Matcher = (s: string) => boolean;

export interface WalkFilter {
  included: Matcher;
  excluded: Matcher;
  pruned: Matcher;
}

/** This walk's share of the files: directories whose path hashes to `index` modulo `of`. */
export interface WalkPart {
  index: number;
  of: number;
}

export interface WalkError {
  path: string;
  op: string;
  message: string;
  code?: string;
}

/**
 * Decides a file in the walk (select mode): the index of the rule that acts on it (packed
 * with it), or UNMATCHED / KEPT (counted only). May read the view's record (state, pinned).
 */
export type Selector = (v: FileView) => number;
export const UNMATCHED = -1;
export const KEPT = -2;

/** A batch of files: `words` FILE_WORDS per file, `bytes` each file's name then record, `dirs` the directories they are in. */
export interface Packed {
  count: number;
  /** Select mode: files looked at and decided here with no action (not packed). */
  unmatched: number;
  kept: number;
  words: Uint32Array;
  bytes: Uint8Array;
  used: number;
  dirs: string[];
  errors: WalkError[];
}

const DT_UNKNOWN = 0;
const DT_DIR = 4;
const DT_REG = 8;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

// struct statx as 32-bit words (every field used is 4-byte aligned).
const W_NLINK = 4;
const W_MODE = 7; // low 16 bits
const W_DEV_MAJOR = 34;
const W_DEV_MINOR = 35;
/** statx words copied per file: uid, gid, mode, ino, size, blocks, atime, mtime, ctime (sec lo, hi, nsec), dev. */
const COPIED = [5, 6, W_MODE, 8, 9, 10, 11, 12, 13, 16, 17, 18, 28, 29, 30, 24, 25, 26, W_DEV_MAJOR, W_DEV_MINOR];

/** Words per file in a batch: [dir index, name length, record length or NO_RECORD, ...COPIED, rule index or NO_RULE]. */
export const FILE_WORDS = 4 + COPIED.length;
export const NO_RECORD = 0xffffffff;
export const NO_RULE = 0xffffffff;
/** Where each field sits in a file's words (scan.ts reads them). */
export const F = { dir: 0, nameLen: 1, recLen: 2, uid: 3, gid: 4, mode: 5, ino: 6, size: 8, blocks: 10, atime: 12, mtime: 15, ctime: 18, devMajor: 21, devMinor: 22, rule: 23 } as const;

/** Which part owns a directory (FNV-1a of its relative path): deterministic, even over many directories. */
export function partOf(relDir: string, of: number): number {
  if (of === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < relDir.length; i++) h = Math.imul(h ^ relDir.charCodeAt(i), 0x01000193);
  return (h >>> 0) % of;
}

/** glibc's makedev: what Node's lstat reports as st_dev. */
export function makedev(major: number, minor: number): number {
  // (major & 0xfff) << 8 | (minor & 0xff) | (minor >> 8) << 20 | (major >> 12) << 44: disjoint bits
  return (major & 0xfff) * 256 + (minor & 0xff) + Math.floor(minor / 256) * 1048576 + Math.floor(major / 4096) * 2 ** 44;
}

function errorOf(path: string, op: string, e: unknown): WalkError {
  const err = e as NodeJS.ErrnoException;
  return { path, op, message: err?.message ?? String(e), ...(err?.code ? { code: err.code } : {}) };
}

/**
 * Every regular file beneath `root` that the filter keeps, depth first, in batches of at
 * most `batchFiles` (a batch also ends every 4096 entries looked at, so a tree of symlinks
 * or pruned names still reports its errors as it goes). Throws when the root is not a directory.
 */
export function* walkRoot(root: string, f: WalkFilter, batchFiles = 1024, part: WalkPart = { index: 0, of: 1 }, select?: Selector): Generator<Packed> {
  const rootSt = lstatSync(root, { bigint: true });
  if (!rootSt.isDirectory()) throw new Error(`fileset root ${root}: not a directory (symlinks are not followed)`);
  const rootFd = openRootFd(root);
  const dents = Buffer.alloc(64 * 1024);
  const stBuf = Buffer.alloc(256);
  const w = new Uint32Array(stBuf.buffer, stBuf.byteOffset, 64);
  // The view's record read goes to the current directory fd and name (set below).
  let curFd = -1;
  let curName = '';
  const view = new FileView(w, () => getxattrAt(curFd, curName, XATTR_STATE));
  let p = newBatch(batchFiles);
  let seen = 0;
  try {
    const rootDev = Number(fstatSync(rootFd, { bigint: true }).dev);
    // Only directory paths wait here; files stream.
    const pending: string[] = [''];
    // Beside each: its st_nlink was 2, so it has no subdirectory (ext4, xfs; 1 means unknown).
    const leaf: boolean[] = [false];
    while (pending.length > 0) {
      const relDir = pending.pop()!;
      const isLeaf = leaf.pop()!;
      const mine = partOf(relDir, part.of) === part.index;
      // Another part's directory is listed only for its subdirectories: a leaf has none.
      if (!mine && isLeaf) continue;
      const absDir = relDir === '' ? root : join(root, relDir);
      // Another part's directory: listed for its subdirectories only, its errors are that part's.
      const fail = (e: WalkError) => {
        if (mine) p.errors.push(e); // the current batch's (p moves on as batches are yielded)
      };
      let fd: number;
      try {
        fd = dirFdBeneath(rootFd, relDir === '' ? '.' : relDir, absDir);
      } catch (e) {
        fail(errorOf(absDir, 'open', e)); // e.g. swapped for a symlink since listed
        continue;
      }
      let dirIdx = -1;
      try {
        for (;;) {
          let n: number;
          try {
            n = getdents64(fd, dents, absDir);
          } catch (e) {
            fail(errorOf(absDir, 'readdir', e));
            break;
          }
          if (n === 0) break;
          for (let off = 0; off < n; ) {
            if (++seen % 4096 === 0 && (p.count > 0 || p.errors.length > 0 || p.unmatched > 0 || p.kept > 0)) {
              yield p;
              p = newBatch(batchFiles);
              dirIdx = -1;
            }
            const type = dents[off + 18]!;
            const start = off + 19;
            off += dents.readUInt16LE(off + 16);
            if (type !== DT_REG && type !== DT_DIR && type !== DT_UNKNOWN) continue; // symlinks, FIFOs, sockets, devices
            if (type === DT_REG && !mine) continue;
            let end = start;
            while (dents[end] !== 0) end++;
            if (dents[start] === 46 && (end === start + 1 || (end === start + 2 && dents[start + 1] === 46))) continue; // . and ..
            const name = dents.toString('utf8', start, end);
            const rel = relDir === '' ? name : `${relDir}/${name}`;
            if (type === DT_DIR ? f.pruned(rel) : type === DT_REG && !(f.included(rel) && !f.excluded(rel))) continue;
            try {
              statxAt(fd, name, stBuf); // its error names no path: the report does
            } catch (e) {
              fail(errorOf(join(absDir, name), 'lstat', e));
              continue;
            }
            if (makedev(w[W_DEV_MAJOR]!, w[W_DEV_MINOR]!) !== rootDev) continue; // another filesystem mounted here
            const fmt = w[W_MODE]! & S_IFMT;
            if (fmt === S_IFDIR) {
              if (type === DT_DIR || !f.pruned(rel)) {
                pending.push(rel);
                leaf.push(w[W_NLINK] === 2);
              }
            } else if (fmt === S_IFREG && mine && (type === DT_REG || (f.included(rel) && !f.excluded(rel)))) {
              let rec: Buffer | null;
              let rule = NO_RULE;
              try {
                if (select) {
                  curFd = fd;
                  curName = name;
                  view.at(rel, name);
                  const r = select(view);
                  if (r === UNMATCHED) {
                    p.unmatched++;
                    continue;
                  }
                  if (r === KEPT) {
                    p.kept++;
                    continue;
                  }
                  rule = r;
                  rec = view.raw !== undefined ? view.raw : getxattrAt(fd, name, XATTR_STATE);
                } else rec = getxattrAt(fd, name, XATTR_STATE);
              } catch (e) {
                p.errors.push(errorOf(join(root, rel), 'lgetxattr', e));
                continue;
              }
              if (p.count * FILE_WORDS >= p.words.length) {
                yield p;
                p = newBatch(batchFiles);
                dirIdx = -1;
              }
              if (dirIdx < 0) dirIdx = p.dirs.push(relDir) - 1;
              add(p, dirIdx, dents, start, end, rec, w, rule);
            }
          }
        }
      } finally {
        closeFd(fd); // opened by openat2, not by node:fs (which warns in a worker about fds it did not open)
      }
    }
    if (p.count > 0 || p.errors.length > 0 || p.unmatched > 0 || p.kept > 0) yield p;
  } finally {
    closeSync(rootFd);
  }
}

function newBatch(files: number): Packed {
  return { count: 0, unmatched: 0, kept: 0, words: new Uint32Array(files * FILE_WORDS), bytes: new Uint8Array(files * 32), used: 0, dirs: [], errors: [] };
}

/** Appends one file (the batch has room for its words; the byte area grows). */
function add(p: Packed, dir: number, dents: Buffer, start: number, end: number, rec: Buffer | null, w: Uint32Array, rule: number): void {
  const nameLen = end - start;
  const recLen = rec ? rec.length : 0;
  const at = p.used;
  if (at + nameLen + recLen > p.bytes.length) {
    const grown = new Uint8Array(Math.max(p.bytes.length * 2, at + nameLen + recLen));
    grown.set(p.bytes.subarray(0, at));
    p.bytes = grown;
  }
  dents.copy(p.bytes, at, start, end);
  if (rec) p.bytes.set(rec, at + nameLen);
  p.used = at + nameLen + recLen;
  const o = p.words;
  const base = p.count * FILE_WORDS;
  o[base] = dir;
  o[base + 1] = nameLen;
  o[base + 2] = rec ? recLen : NO_RECORD;
  for (let i = 0; i < COPIED.length; i++) o[base + 3 + i] = w[COPIED[i]!]!;
  o[base + F.rule] = rule;
  p.count++;
}
