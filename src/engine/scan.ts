// Streaming walk of a fileset: FileFacts in batches, memory flat whatever the tree size.
// The walk itself is synchronous (walk.ts: getdents64 + statx + getxattrat relative to
// directory fds opened beneath the root, a few syscalls per entry and no promise per file);
// this module hands it to the event loop in batches, yielding to it between batches (the
// daemon runs scans beside its recall service, which must keep answering events).
// The record is read without opening the file: an open could raise fanotify events.
// Users rename their directories while we walk (issue 18): see walk.ts and kernel/beneath.ts.
import { setImmediate as tick } from 'node:timers/promises';
import { globMatcher } from './glob.js';
import type { FilesetDecl } from '../dsl/ast.js';
import { lgetxattr } from '../kernel/libc.js';
import type { BigIntStats } from 'node:fs';
import { decodeRecord, XATTR_STATE } from './state-record.js';
import { deriveState, type FileFacts } from './facts.js';
import { groupName, userName } from './users.js';
import { walkRoot, type Matcher, type ScanError } from './walk.js';

export type { ScanError } from './walk.js';

export interface ScanOptions {
  /** Unreadable directories or vanished files: reported, never fatal. */
  onError?: (e: ScanError) => void;
  /** Files per batch handed to the event loop (default 1024). */
  batch?: number;
}

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

/** One root's files in batches; the event loop runs between batches. */
export async function* scanRootBatches(root: string, include: string[], exclude: string[], opts: ScanOptions = {}): AsyncGenerator<FileFacts[]> {
  const size = opts.batch ?? 1024;
  const filter = {
    report: opts.onError ?? (() => {}),
    included: include.length === 0 ? () => true : anyOf(include),
    excluded: anyOf(exclude),
    pruned: dirPruner(exclude),
  };
  let batch: FileFacts[] = [];
  for (const f of walkRoot(root, filter)) {
    if (f === null) {
      await tick();
      continue;
    }
    batch.push(f);
    if (batch.length >= size) {
      yield batch;
      batch = [];
      await tick();
    }
  }
  if (batch.length > 0) yield batch;
}

export async function* scanRoot(root: string, include: string[], exclude: string[], opts: ScanOptions = {}): AsyncGenerator<FileFacts> {
  for await (const batch of scanRootBatches(root, include, exclude, opts)) yield* batch;
}

/** Every file of a fileset in batches, root after root. */
export async function* scanFilesetBatches(fs: FilesetDecl, opts: ScanOptions = {}): AsyncGenerator<FileFacts[]> {
  const include = fs.include.length === 1 && fs.include[0] === '**' ? [] : fs.include;
  for (const root of fs.roots) yield* scanRootBatches(root, include, fs.exclude, opts);
}

/** Every file of a fileset, root after root. */
export async function* scanFileset(fs: FilesetDecl, opts: ScanOptions = {}): AsyncGenerator<FileFacts> {
  const include = fs.include.length === 1 && fs.include[0] === '**' ? [] : fs.include;
  for (const root of fs.roots) yield* scanRoot(root, include, fs.exclude, opts);
}
