// SHA-256 of many buffers off the event loop, on worker threads of their own (one, and a
// second while the first's queue is deep: a cold read's runs wait behind each other otherwise).
// Rules:
// - not the libuv threadpool (WebCrypto's digest runs there): that pool also reads the
//   fanotify group (recall/service.ts) and the local tier's objects, and hash jobs queued
//   ahead of a group read delay every event behind them;
// - the bytes are in shared memory the thread reads (slab-pool.ts), reused batch after
//   batch: a run's own buffer (takeRunBuf: the tier reads into it, it is hashed in place,
//   then written out, one message per run), or a copy of the caller's buffers (sha256Off);
//   no batch costs a structured clone (two copies of every byte and an allocation on each
//   side), and no run a fresh 2 MiB allocation;
// - a slab is never written while a thread may read it: a copied batch's slab returns to
//   the pool only with the batch's answer, a run's buffer only when its caller is done;
// - a thread hashes with OpenSSL's SHA256() by address (kernel/sha256-native.ts), else
//   node:crypto: the same digests either way (the native binding proves it on a probe);
// - threads start on first use and are unref'd while idle (they never keep a process
//   alive); a second thread stops after IDLE_STOP_MS without a job;
// - a job the thread cannot hash (it answers an error) is hashed on the caller's thread,
//   and the thread stays; a thread that dies has what it held hashed on the caller's
//   thread and their copy slabs given back, and no thread starts after that: with none
//   left, everything is hashed on the caller's. The first of each is told once
//   (process.emitWarning) and counted (hasherInfo).
import { hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { koffiPath } from '../kernel/libc.js';
import { NATIVE_SHA256_SOURCE } from '../kernel/sha256-native.js';
import { idleCpus } from './idle.js';
import { piecesOf, sha256Each, unitLens } from './sha256-pieces.js';
import { giveSlab, slabOf, takeSlab, type Slab } from './slab-pool.js';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash, hash } = require('node:crypto');
${NATIVE_SHA256_SOURCE}
${piecesOf}
${sha256Each}
const native = workerData.native ? loadNativeSha256(workerData.koffi, createHash) : null;
parentPort.postMessage({ backend: native ? native.name : 'node:crypto' });
parentPort.on('message', ({ id, slab, off, lens }) => {
  try {
    // Consecutive pieces from off: lens[k] bytes each, whole and in bounds (checked here).
    let len = 0;
    for (const n of lens) {
      if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('piece length ' + n);
      len += n;
    }
    const view = new Uint8Array(slab, off, len);
    const out = Buffer.allocUnsafeSlow(32 * lens.length); // its own memory: transferred, not copied
    if (native) native.pieces(view, lens, out);
    else sha256Each(hash, piecesOf(view, lens), out);
    parentPort.postMessage({ id, sums: out }, [out.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: String((e && e.message) || e) });
  }
});`;

/** A batch: how to hash it here if its thread cannot, the slab to give back (null: the caller's), its answer. */
type Pending = { here(): Buffer; slab: Slab | null; bytes: number; resolve(sums: Buffer): void };

interface Thread {
  w: Worker;
  jobs: Map<number, Pending>;
  bytes: number;
  /** Jobs it answered (tests: which threads ran). */
  done: number;
  idle?: NodeJS.Timeout;
}

/** Threads at most: two where there are two CPUs (the second only for a deep queue while a CPU is idle: pick). */
let maxThreads = Math.min(2, availableParallelism());
const threads: Thread[] = [];
let broken = false;
let useNative = true;
let backend = 'none yet';
let nextId = 1;
let idleNow = (): number => idleCpus();
/** A second thread without a job this long stops (a cold read's runs come much closer together). */
let idleStopMs = 10_000;
let faultLens: ((lens: number[]) => number[]) | null = null;
const trouble = { threadsFailed: 0, jobErrors: 0, first: null as string | null };

/** The SHA-256 of each piece, concatenated, on the caller's thread. */
function onThread(pieces: Uint8Array[]): Buffer {
  const out = Buffer.allocUnsafe(32 * pieces.length);
  sha256Each(hash, pieces, out);
  return out;
}

/** Counts a thread's death or a job it could not hash; the first of all is told once. */
function note(what: 'threadsFailed' | 'jobErrors', context: string): void {
  trouble[what]++;
  if (trouble.first) return;
  trouble.first = context;
  process.emitWarning(context, { code: 'TIER_HASHER' });
}

function fail(t: Thread, why: string): void {
  const k = threads.indexOf(t);
  if (k < 0) return; // stopped while idle, or already failed
  threads.splice(k, 1);
  broken = true;
  clearTimeout(t.idle);
  note('threadsFailed', `hasher thread failed (${why}): ${t.jobs.size} pending job(s) and every later one hashed on the event loop`);
  for (const p of t.jobs.values()) {
    if (p.slab) giveSlab(p.slab); // the thread is gone: nothing reads it
    p.resolve(p.here());
  }
  t.jobs.clear();
  t.bytes = 0;
}

/** Stops a second thread that has had no job since its timer was set. */
function stopIdle(t: Thread): void {
  const k = threads.indexOf(t);
  if (k <= 0 || t.jobs.size > 0) return;
  threads.splice(k, 1);
  void t.w.terminate();
}

function start(): Thread {
  // execArgv []: not the host's loaders (--import hooks would load into this thread too).
  const w = new Worker(WORKER, { eval: true, execArgv: [], workerData: { koffi: koffiPath(), native: useNative } });
  const t: Thread = { w, jobs: new Map(), bytes: 0, done: 0 };
  w.unref();
  w.on('message', (m: { id: number; sums?: Uint8Array; error?: string } | { backend: string }) => {
    if ('backend' in m) {
      backend = m.backend;
      return;
    }
    const p = t.jobs.get(m.id);
    if (!p) return;
    t.jobs.delete(m.id);
    t.bytes -= p.bytes;
    t.done++;
    if (t.jobs.size === 0) {
      w.unref();
      if (t !== threads[0]) t.idle = setTimeout(() => stopIdle(t), idleStopMs).unref();
    }
    if (p.slab) giveSlab(p.slab);
    if (m.sums) return p.resolve(Buffer.from(m.sums.buffer, m.sums.byteOffset, m.sums.byteLength));
    note('jobErrors', `hasher thread could not hash a job of ${p.bytes} bytes (${m.error}): hashed on the event loop`);
    p.resolve(p.here());
  });
  w.on('error', (e) => fail(t, e.message));
  w.on('exit', (code) => fail(t, `exit ${code}`));
  threads.push(t);
  return t;
}

/**
 * Batches a thread holds before another thread may start: one hashing, one waiting. A
 * second thread costs CPU of its own (bench/hash-units.ts, 512 MiB: 350-390 ms of CPU on
 * one thread, 350-430 ms on two, for 250-450 ms of wall instead of 360-510), so it serves
 * a deep queue only, and only while a CPU is idle (idle.ts): on a busy machine it would take
 * a core from the event loop and the reader.
 */
const DEEP = 2;

/** The first thread while its queue has room or no CPU is idle, else another with room or a new one; null: none can be had. */
function pick(): Thread | null {
  const first = threads[0];
  if (!first) return broken ? null : start();
  if (first.jobs.size < DEEP || idleNow() < 0.5) return first;
  const open = threads.find((t) => t.jobs.size < DEEP);
  if (open) return open;
  if (!broken && threads.length < maxThreads) return start();
  return threads.reduce((a, t) => (t.bytes < a.bytes ? t : a), first);
}

/** The SHA-256 of each buffer, in order. */
export async function sha256Off(bufs: Uint8Array[]): Promise<Buffer[]> {
  if (bufs.length === 0) return [];
  const lens = bufs.map((b) => b.length);
  const bytes = lens.reduce((n, x) => n + x, 0);
  const t = pick();
  let all: Buffer;
  if (!t) all = onThread(bufs);
  else {
    const slab = takeSlab(bytes);
    const view = new Uint8Array(slab.sab, slab.off, bytes);
    let at = 0;
    for (const b of bufs) {
      view.set(b, at);
      at += b.length;
    }
    all = await post(t, { here: () => onThread(bufs), slab, bytes }, { slab: slab.sab, off: slab.off, lens });
  }
  return bufs.map((_, k) => all.subarray(32 * k, 32 * k + 32));
}

/**
 * A buffer of `bytes` over pooled shared memory, for one run: a tier reads into it, the
 * hasher reads it in place (sha256Units: no copy), the caller writes it out, then gives it
 * back with giveRunBuf. Never give back a buffer something may still write into (a read
 * that timed out may still be running): drop it instead.
 */
export function takeRunBuf(bytes: number): Buffer {
  const s = takeSlab(bytes);
  const b = Buffer.from(s.sab, s.off, bytes);
  runBufs.set(b, s);
  return b;
}

/** Gives back a buffer takeRunBuf returned (the same object: a stale one, or one given twice, is ignored). */
export function giveRunBuf(b: Buffer): void {
  const s = runBufs.get(b);
  runBufs.delete(b);
  if (s) giveSlab(s);
}

/** Run buffers lent, each with the Slab it holds (weak: a dropped buffer is collected). */
const runBufs = new WeakMap<Buffer, Slab>();

/**
 * The SHA-256 of every `unit`-sized piece of `b` (the last one shorter), concatenated: one
 * message for a whole run. A view of shared memory (takeRunBuf) is hashed in place; any
 * other buffer is copied into a slab first. `b` must not change until this resolves.
 */
export function sha256Units(b: Buffer, unit: number): Promise<Buffer> {
  if (b.length === 0) return Promise.resolve(Buffer.alloc(0));
  const lens = unitLens(b.length, unit);
  const here = () => onThread(piecesOf(b, lens));
  const t = pick();
  if (!t) return Promise.resolve(here());
  let shared = slabOf(b);
  let own: Slab | null = null;
  if (!shared) {
    shared = own = takeSlab(b.length);
    new Uint8Array(own.sab, own.off, b.length).set(b);
  }
  return post(t, { here, slab: own, bytes: b.length }, { slab: shared.sab, off: shared.off, lens });
}

/** sha256Units on the caller's thread (a chunk or two: a reader waits, and the trip to the thread costs more). */
export const sha256UnitsHere = (b: Buffer, unit: number): Buffer => onThread(piecesOf(b, unitLens(b.length, unit)));

function post(t: Thread, p: Omit<Pending, 'resolve'>, msg: { slab: SharedArrayBuffer; off: number; lens: number[] }): Promise<Buffer> {
  const id = nextId++;
  clearTimeout(t.idle);
  return new Promise<Buffer>((resolve) => {
    t.jobs.set(id, { ...p, resolve });
    t.bytes += p.bytes;
    t.w.ref(); // a hash under way keeps the process alive until it answers
    t.w.postMessage({ id, ...msg, lens: faultLens ? faultLens(msg.lens) : msg.lens });
  });
}

/** What hashes (bench/hash-units.ts, tests): the threads' backend, the jobs each live thread answered, what went wrong. */
export const hasherInfo = (): { backend: string; threads: number; done: number[]; broken: boolean; threadsFailed: number; jobErrors: number; firstTrouble: string | null } => ({
  backend,
  threads: threads.length,
  done: threads.map((t) => t.done),
  broken,
  threadsFailed: trouble.threadsFailed,
  jobErrors: trouble.jobErrors,
  firstTrouble: trouble.first,
});

/**
 * Tests and bench/hash-units.ts only. Before the first hash: threads hash with node:crypto
 * (native false) or try OpenSSL by address first. Any time: at most `threads` of them; the
 * idle-CPU figure pick() reads (null: idle.ts again); how long a second thread idles before
 * it stops; faultLens, a fault injection, rewrites the lengths posted to the thread (null: none).
 */
export function configureHasherForTests(o: { native?: boolean; threads?: number; idle?: (() => number) | null; idleStopMs?: number; faultLens?: ((lens: number[]) => number[]) | null }): void {
  useNative = o.native ?? useNative;
  maxThreads = o.threads ?? maxThreads;
  if (o.idle !== undefined) idleNow = o.idle ?? (() => idleCpus());
  idleStopMs = o.idleStopMs ?? idleStopMs;
  if (o.faultLens !== undefined) faultLens = o.faultLens;
}

/** Tests only: the live threads' workers (a test terminates one to see its jobs hashed here). */
export const hasherWorkersForTests = (): Worker[] => threads.map((t) => t.w);
