// Streaming scan of a fileset: FileFacts in batches, memory flat whatever the tree size.
// The walk itself is synchronous and runs in a worker thread per root (walk.ts, walk-worker.ts:
// getdents64 + statx + getxattrat relative to directory fds opened beneath the root, a few
// syscalls per entry, no promise per file); this module turns its packed batches into
// FileFacts on the caller's thread, whose event loop runs between batches (the daemon runs
// scans beside its recall service, which must keep answering events).
// scanRoot (reconcile, gc: every file) builds each FileFacts only when the caller takes it,
// so the V8 heap holds one file's facts, not a batch's (see Unpacker).
// The record is read without opening the file: an open could raise fanotify events.
// Users rename their directories while we walk (issue 18): see walk.ts and kernel/beneath.ts.
import { Worker } from 'node:worker_threads';
import { normalize } from 'node:path';
import { availableParallelism } from 'node:os';
import type { FilesetDecl, PolicyDecl, Rule } from '../dsl/ast.js';
import { lgetxattr } from '../kernel/libc.js';
import type { BigIntStats } from 'node:fs';
import { decodeRecord, XATTR_STATE } from '../record/state-record.js';
import { deriveState, type FileFacts } from './facts.js';
import { groupName, userName } from '../walk/users.js';
import { F, FILE_WORDS, makedev, NO_RECORD, type Packed } from '../walk/walk.js';
import { msAt, nsAt, u64At } from '../walk/file-view.js';
import type { WalkJob, WalkMessage } from './walk-worker.js';

export interface ScanError {
  path: string;
  op: string;
  error: Error;
}

export interface ScanOptions {
  /** Unreadable directories or vanished files: reported, never fatal. */
  onError?: (e: ScanError) => void;
  /** Walk threads per root (default: one per core, at most 4). */
  threads?: number;
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

// In the build, walk-worker.js beside this file; under tsx (tests, bench), the .ts.
const WORKER = new URL(import.meta.url.endsWith('.ts') ? './walk-worker.ts' : './walk-worker.js', import.meta.url);

/**
 * The batch's files as FileFacts, built one at a time as asked (absPath = join(root, rel), by
 * concatenation). A caller that takes them one by one (scanRoot: reconcile, gc) lets each die
 * young: built as a whole batch of 1024 they outlived the scavenges of the work done on them,
 * were promoted, and the worker's V8 heap grew with the files a pass walked (bench/b9-memory.ts).
 */
class Unpacker {
  private at = 0;
  private readonly bytes: Buffer;

  constructor(
    private readonly p: Packed,
    private readonly root: string,
    private readonly prefix: string,
  ) {
    this.bytes = Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.used);
  }

  /** File i; files are taken in order (the name and record bytes are read sequentially). */
  fact(i: number): FileFacts {
    const { p, bytes } = this;
    const b = i * FILE_WORDS;
    const w = p.words;
    const nameLen = w[b + F.nameLen]!;
    const recLen = w[b + F.recLen]!;
    const name = bytes.toString('utf8', this.at, this.at + nameLen);
    this.at += nameLen;
    const record = recLen === NO_RECORD ? null : decodeRecord(Buffer.from(bytes.subarray(this.at, this.at + recLen)));
    if (recLen !== NO_RECORD) this.at += recLen;
    const dir = p.dirs[w[b + F.dir]!]!;
    const rel = dir === '' ? name : `${dir}/${name}`;
    const size = u64At(w, b + F.size);
    const mtimeNs = nsAt(w, b + F.mtime);
    const uid = w[b + F.uid]!;
    const gid = w[b + F.gid]!;
    return {
      path: rel,
      absPath: `${this.prefix}/${rel}`,
      name,
      root: this.root,
      size,
      blocks: u64At(w, b + F.blocks),
      atimeMs: msAt(w, b + F.atime),
      mtimeMs: msAt(w, b + F.mtime),
      ctimeMs: msAt(w, b + F.ctime),
      ctimeNs: nsAt(w, b + F.ctime),
      mtimeNs,
      mode: w[b + F.mode]! & 0xffff,
      uid,
      gid,
      owner: userName(uid),
      group: groupName(gid),
      dev: makedev(w[b + F.devMajor]!, w[b + F.devMinor]!),
      ino: u64At(w, b + F.ino),
      state: deriveState(record, { size, mtimeNs }),
      pinned: record?.pinned ?? false,
      record,
    };
  }
}

/** The whole batch at once (a policy run plans it as a batch). */
function unpack(p: Packed, root: string, prefix: string): FileFacts[] {
  const u = new Unpacker(p, root, prefix);
  const out: FileFacts[] = new Array(p.count);
  for (let i = 0; i < p.count; i++) out[i] = u.fact(i);
  return out;
}

/** The batch one file at a time, each built when the consumer asks for it. */
function* unpackEach(p: Packed, root: string, prefix: string): Generator<FileFacts> {
  const u = new Unpacker(p, root, prefix);
  for (let i = 0; i < p.count; i++) yield u.fact(i);
}

function ruleIndexes(p: Packed): Uint32Array {
  const out = new Uint32Array(p.count);
  for (let i = 0; i < p.count; i++) out[i] = p.words[i * FILE_WORDS + F.rule]!;
  return out;
}

/** Under tsx (tests, bench) a worker has no loader hooks of its own: it registers tsx's, then imports the .ts entry. */
function tsxWorker(workerData: WalkJob): Worker {
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${api}).then((t) => { t.register(); return import(${JSON.stringify(WORKER.href)}); })`, { eval: true, workerData });
}

function errorFrom(m: { message: string; code?: string }): Error {
  const e = new Error(m.message) as NodeJS.ErrnoException;
  if (m.code) e.code = m.code;
  return e;
}

/** Walk threads per root: one per core (the walk is syscall-bound; the caller's thread plans). */
const WALK_THREADS = Math.max(1, Math.min(4, availableParallelism()));

/**
 * One root's files in batches, walked by worker threads (walk.ts; each thread its part of
 * the directories) while the caller plans the previous batches; the caller's event loop
 * runs between batches. Batches of different threads interleave: no order is promised
 * across directories.
 */
export async function* scanRootBatches(root: string, include: string[], exclude: string[], opts: ScanOptions = {}): AsyncGenerator<FileFacts[]> {
  for await (const b of walkBatches(root, include, exclude, opts)) if (b.packed.count > 0) yield unpack(b.packed, root, b.prefix);
}

interface WalkedBatch {
  /** The files as the walk packed them (unpack / unpackEach), under `prefix` (the root, normalized). */
  packed: Packed;
  prefix: string;
  /** Select mode: each file's deciding rule (its index in the policy). */
  rules: Uint32Array | null;
  unmatched: number;
  kept: number;
}

async function* walkBatches(root: string, include: string[], exclude: string[], opts: ScanOptions, select?: WalkJob['select']): AsyncGenerator<WalkedBatch> {
  const report = opts.onError ?? (() => {});
  const prefix = normalize(root).replace(/\/+$/, '');
  const threads = opts.threads ?? WALK_THREADS;
  const queue: { m: WalkMessage; ctl: Int32Array }[] = [];
  let failure: Error | null = null;
  let running = threads;
  let wake: (() => void) | null = null;
  const poke = () => {
    wake?.();
    wake = null;
  };
  const workers = Array.from({ length: threads }, (_, index) => {
    const ctl = new Int32Array(new SharedArrayBuffer(8));
    const workerData = { root, include, exclude, ctl, part: { index, of: threads }, ...(select ? { select } : {}) } satisfies WalkJob;
    const worker = WORKER.pathname.endsWith('.ts') ? tsxWorker(workerData) : new Worker(WORKER, { workerData });
    const w = { worker, ctl, exited: false, done: false };
    worker.on('message', (m: WalkMessage) => {
      queue.push({ m, ctl });
      poke();
    });
    worker.on('error', (e) => {
      failure = e;
      poke();
    });
    worker.on('exit', () => {
      w.exited = true;
      poke();
    });
    return w;
  });
  try {
    while (running > 0) {
      const item = queue.shift();
      if (!item) {
        if (failure) throw failure;
        if (workers.some((w) => w.exited && !w.done)) throw new Error(`scan of ${root}: the walk thread ended early`);
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      const { m, ctl } = item;
      if (m.type === 'done') {
        workers.find((w) => w.ctl === ctl)!.done = true;
        running--;
        continue;
      }
      if (m.type === 'fatal') throw errorFrom(m);
      for (const e of m.batch.errors) report({ path: e.path, op: e.op, error: errorFrom(e) });
      const rules = select ? ruleIndexes(m.batch) : null;
      // The thread may walk on: this batch is ours now (one more than MAX_IN_FLIGHT at most while the caller takes it).
      Atomics.sub(ctl, 0, 1);
      Atomics.notify(ctl, 0);
      if (m.batch.count > 0 || m.batch.unmatched > 0 || m.batch.kept > 0) yield { packed: m.batch, prefix, rules, unmatched: m.batch.unmatched, kept: m.batch.kept };
    }
  } finally {
    // Stop walks nobody reads any more; they close their fds on the way out.
    for (const w of workers) {
      Atomics.store(w.ctl, 1, 1);
      Atomics.notify(w.ctl, 0);
    }
    await Promise.all(workers.map((w) => (w.exited ? null : new Promise((r) => w.worker.once('exit', r)))));
  }
}

/** One root's files one at a time, each FileFacts built only when taken (see Unpacker): reconcile and gc walk every file this way. */
export async function* scanRoot(root: string, include: string[], exclude: string[], opts: ScanOptions = {}): AsyncGenerator<FileFacts> {
  for await (const b of walkBatches(root, include, exclude, opts)) yield* unpackEach(b.packed, root, b.prefix);
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

export interface SelectedBatch {
  /** The files a rule acts on (not keep), each with its rule. */
  files: FileFacts[];
  rules: Rule[];
  /** Files looked at that no rule matched, or that a keep rule decided: counted, not built. */
  unmatched: number;
  kept: number;
}

/**
 * A policy run's scan: every file of the fileset decided by `evaluate(policy, file, now)` in
 * the walk threads (walk.ts, file-view.ts), the same decision evaluate() makes on the
 * FileFacts; only the files whose deciding rule acts come back as FileFacts, and their
 * record is read only then (or when a condition reads state or pinned).
 */
export async function* selectFilesetBatches(fs: FilesetDecl, policy: PolicyDecl, now: number, opts: ScanOptions = {}): AsyncGenerator<SelectedBatch> {
  const include = fs.include.length === 1 && fs.include[0] === '**' ? [] : fs.include;
  for (const root of fs.roots) {
    for await (const b of walkBatches(root, include, fs.exclude, opts, { policy, now })) {
      const rules = Array.from(b.rules!, (i) => policy.rules[i]!);
      yield { files: unpack(b.packed, root, b.prefix), rules, unmatched: b.unmatched, kept: b.kept };
    }
  }
}
