// Streaming walk of a fileset: yields FileFacts one by one, memory flat whatever the
// tree size (one open directory handle at a time, a bounded batch of lstat calls).
// Never follows symlinks, never leaves the root's filesystem (st_dev), regular files
// only, include/exclude globs relative to the root, dotfiles included. The record is
// read with lgetxattr by path: opening the file could raise fanotify open events.
// Users rename their directories while we walk (issue 18): each directory is opened as an
// O_PATH fd beneath the root fd (openat2: no symlink in any component, no mount crossed,
// kernel/beneath.ts), and read, lstat'ed and getxattr'ed through `/proc/self/fd/N/name`,
// so a directory swapped for a symlink mid-walk can never take the walk outside.
import { opendir, lstat } from 'node:fs/promises';
import { closeSync, fstatSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { openRootFd, pathFdBeneath } from '../kernel/beneath.js';
import { globMatcher } from './glob.js';
import type { FilesetDecl } from '../dsl/ast.js';
import { lgetxattr } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../record/state-record.js';
import { deriveState, type FileFacts } from './facts.js';
import { groupName, userName } from './users.js';

export interface ScanError {
  path: string;
  op: string;
  error: Error;
}

export interface ScanOptions {
  /** Unreadable directories or vanished files: reported, never fatal. */
  onError?: (e: ScanError) => void;
  /** lstat calls in flight per directory. */
  batch?: number;
}

type Matcher = (s: string) => boolean;
const never: Matcher = () => false;

function anyOf(globs: string[]): Matcher {
  if (globs.length === 0) return never;
  return globMatcher(globs);
}

/** A directory is pruned when an exclude matches it, or matches it with its trailing `/**` dropped. */
function dirPruner(exclude: string[]): Matcher {
  const dirGlobs = exclude.flatMap((g) => (g.endsWith('/**') ? [g, g.slice(0, -3)] : [g]));
  return anyOf(dirGlobs);
}

const nsToMs = (ns: bigint) => Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6;

/** Facts for one regular file from its lstat and record (read at `at`: the scan's `/proc/self/fd/N/name`). */
export function factsFrom(root: string, rel: string, abs: string, st: BigIntStats, at = abs): FileFacts {
  const record = decodeRecord(lgetxattr(at, XATTR_STATE));
  const size = Number(st.size);
  const mtimeNs = st.mtimeNs.toString();
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const slash = rel.lastIndexOf('/');
  return {
    path: rel,
    absPath: abs,
    name: slash < 0 ? rel : rel.slice(slash + 1),
    root,
    size,
    blocks: Number(st.blocks),
    atimeMs: nsToMs(st.atimeNs),
    mtimeMs: nsToMs(st.mtimeNs),
    ctimeMs: nsToMs(st.ctimeNs),
    ctimeNs: st.ctimeNs.toString(),
    mtimeNs,
    mode: Number(st.mode),
    uid,
    gid,
    owner: userName(uid),
    group: groupName(gid),
    dev: Number(st.dev),
    ino: Number(st.ino),
    state: deriveState(record, { size, mtimeNs }),
    pinned: record?.pinned ?? false,
    record,
  };
}

export async function* scanRoot(
  root: string,
  include: string[],
  exclude: string[],
  opts: ScanOptions = {},
): AsyncGenerator<FileFacts> {
  const report = opts.onError ?? (() => {});
  const batch = opts.batch ?? 64;
  const included = include.length === 0 ? () => true : anyOf(include);
  const excluded = anyOf(exclude);
  const pruned = dirPruner(exclude);
  const rootSt = await lstat(root, { bigint: true });
  if (!rootSt.isDirectory()) throw new Error(`fileset root ${root}: not a directory (symlinks are not followed)`);
  const rootFd = openRootFd(root);
  try {
    const dev = fstatSync(rootFd, { bigint: true }).dev;
    // Depth-first over pending directories: only directory paths wait here, files stream.
    const pending: string[] = [''];
    while (pending.length > 0) {
      const relDir = pending.pop()!;
      const absDir = relDir === '' ? root : join(root, relDir);
      let dirFd: number;
      try {
        dirFd = relDir === '' ? rootFd : pathFdBeneath(rootFd, relDir, absDir, O_DIRECTORY);
      } catch (e) {
        report({ path: absDir, op: 'open', error: e as Error }); // e.g. swapped for a symlink since listed
        continue;
      }
      try {
        yield* scanDir(root, relDir, `/proc/self/fd/${dirFd}`, dev, pending, { report, batch, included, excluded, pruned });
      } finally {
        if (dirFd !== rootFd) closeSync(dirFd);
      }
    }
  } finally {
    closeSync(rootFd);
  }
}

const O_DIRECTORY = 0o200000;

interface DirCtx {
  report: (e: ScanError) => void;
  batch: number;
  included: Matcher;
  excluded: Matcher;
  pruned: Matcher;
}

/** One directory, read through `at` (its O_PATH fd's magic link): files yielded, subdirectories pushed to pending. */
async function* scanDir(root: string, relDir: string, at: string, dev: bigint, pending: string[], c: DirCtx): AsyncGenerator<FileFacts> {
  const { report, batch, included, excluded, pruned } = c;
  const absDir = relDir === '' ? root : join(root, relDir);
  let dir;
  try {
    dir = await opendir(at, { bufferSize: 256 });
  } catch (e) {
    report({ path: absDir, op: 'opendir', error: e as Error });
    return;
  }
  let names: string[] = [];
  const relOf = (name: string) => (relDir === '' ? name : `${relDir}/${name}`);
  const flush = async function* (): AsyncGenerator<FileFacts> {
    const sts = await Promise.all(
      names.map((name) =>
        lstat(`${at}/${name}`, { bigint: true }).catch((e: Error) => {
          report({ path: join(absDir, name), op: 'lstat', error: e });
          return null;
        }),
      ),
    );
    for (let i = 0; i < names.length; i++) {
      const st = sts[i];
      const name = names[i]!;
      const rel = relOf(name);
      if (!st || st.dev !== dev) continue; // another filesystem mounted here
      if (st.isDirectory()) {
        if (!pruned(rel)) pending.push(rel);
      } else if (st.isFile() && included(rel) && !excluded(rel)) {
        try {
          yield factsFrom(root, rel, join(root, rel), st, `${at}/${name}`);
        } catch (e) {
          report({ path: join(root, rel), op: 'lgetxattr', error: e as Error });
        }
      }
    }
    names = [];
  };
  try {
    for await (const d of dir) {
      const rel = relOf(d.name);
      // Symlinks, sockets, devices, fifos are never managed; lstat decides the rest
      // (also for file systems that report DT_UNKNOWN).
      if (d.isSymbolicLink() || d.isFIFO() || d.isSocket() || d.isBlockDevice() || d.isCharacterDevice()) continue;
      if (d.isDirectory() && pruned(rel)) continue;
      names.push(d.name);
      if (names.length >= batch) yield* flush();
    }
    yield* flush();
  } catch (e) {
    report({ path: absDir, op: 'readdir', error: e as Error });
  }
}

/** Every file of a fileset, root after root. */
export async function* scanFileset(fs: FilesetDecl, opts: ScanOptions = {}): AsyncGenerator<FileFacts> {
  const include = fs.include.length === 1 && fs.include[0] === '**' ? [] : fs.include;
  for (const root of fs.roots) yield* scanRoot(root, include, fs.exclude, opts);
}
