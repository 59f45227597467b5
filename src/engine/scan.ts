// Streaming walk of a fileset: yields FileFacts one by one, memory flat whatever the
// tree size (one open directory handle per level, a bounded batch of lstat calls).
// Never follows symlinks, never leaves the root's filesystem (st_dev), regular files
// only, include/exclude globs relative to the root, dotfiles included. The record is
// read with lgetxattr by path: opening the file could raise fanotify open events.
import { opendir, lstat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { globMatcher } from './glob.js';
import type { FilesetDecl } from '../dsl/ast.js';
import { lgetxattr } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE } from './state-record.js';
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

/** Facts for one regular file from its lstat and record. */
export function factsFrom(root: string, rel: string, abs: string, st: BigIntStats): FileFacts {
  const record = decodeRecord(lgetxattr(abs, XATTR_STATE));
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
  const dev = rootSt.dev;

  // Depth-first over pending directories: only directory paths wait here, files stream.
  const pending: string[] = [''];
  while (pending.length > 0) {
    const relDir = pending.pop()!;
    const absDir = relDir === '' ? root : join(root, relDir);
    let dir;
    try {
      dir = await opendir(absDir, { bufferSize: 256 });
    } catch (e) {
      report({ path: absDir, op: 'opendir', error: e as Error });
      continue;
    }
    let names: string[] = [];
    const flush = async function* (): AsyncGenerator<FileFacts> {
      const sts = await Promise.all(
        names.map((rel) =>
          lstat(join(root, rel), { bigint: true }).catch((e: Error) => {
            report({ path: join(root, rel), op: 'lstat', error: e });
            return null;
          }),
        ),
      );
      for (let i = 0; i < names.length; i++) {
        const st = sts[i];
        const rel = names[i]!;
        if (!st || st.dev !== dev) continue; // another filesystem mounted here
        if (st.isDirectory()) {
          if (!pruned(rel)) pending.push(rel);
        } else if (st.isFile() && included(rel) && !excluded(rel)) {
          try {
            yield factsFrom(root, rel, join(root, rel), st);
          } catch (e) {
            report({ path: join(root, rel), op: 'lgetxattr', error: e as Error });
          }
        }
      }
      names = [];
    };
    try {
      for await (const d of dir) {
        const rel = relDir === '' ? d.name : `${relDir}/${d.name}`;
        // Symlinks, sockets, devices, fifos are never managed; lstat decides the rest
        // (also for file systems that report DT_UNKNOWN).
        if (d.isSymbolicLink() || d.isFIFO() || d.isSocket() || d.isBlockDevice() || d.isCharacterDevice()) continue;
        if (d.isDirectory() && pruned(rel)) continue;
        names.push(rel);
        if (names.length >= batch) yield* flush();
      }
      yield* flush();
    } catch (e) {
      report({ path: absDir, op: 'readdir', error: e as Error });
    }
  }
}

/** Every file of a fileset, root after root. */
export async function* scanFileset(fs: FilesetDecl, opts: ScanOptions = {}): AsyncGenerator<FileFacts> {
  const include = fs.include.length === 1 && fs.include[0] === '**' ? [] : fs.include;
  for (const root of fs.roots) yield* scanRoot(root, include, fs.exclude, opts);
}
