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
//   alive); a thread that fails has what it held hashed on the caller's thread, and no
//   thread starts after a failure: with none left, everything is hashed on the caller's.
import { hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { koffiPath } from '../kernel/libc.js';
import { NATIVE_SHA256_SOURCE } from '../kernel/sha256-native.js';
import { idleCpus } from './idle.js';
import { giveSlab, slabOf, takeSlab, type Slab } from './slab-pool.js';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash, hash } = require('node:crypto');
${NATIVE_SHA256_SOURCE}
const native = workerData.native ? loadNativeSha256(workerData.koffi, createHash) : null;
parentPort.postMessage({ backend: native ? native.name : 'node:crypto' });
parentPort.on('message', ({ id, slab, off, lens }) => {
  // Consecutive pieces from off: lens[k] bytes each. The view's bounds are checked here.
  let len = 0;
  for (const n of lens) len += n;
  const view = new Uint8Array(slab, off, len);
  const out = Buffer.allocUnsafeSlow(32 * lens.length); // its own memory: transferred, not copied
  if (native) native.pieces(view, lens, out);
  else for (let k = 0, at = 0; k < lens.length; at += lens[k], k++) hash('sha256', view.subarray(at, at + lens[k]), 'buffer').copy(out, 32 * k);
  parentPort.postMessage({ id, sums: out }, [out.buffer]);
});`;

/** A batch: how to hash it here if its thread fails, the slab to give back (null: the caller's), its answer. */
type Pending = { here(): Buffer; slab: Slab | null; bytes: number; resolve(sums: Buffer): void };

interface Thread {
  w: Worker;
  jobs: Map<number, Pending>;
  bytes: number;
}

/** Threads at most: two where there are two CPUs (the second only for a deep queue while a CPU is idle: pick). */
let maxThreads = Math.min(2, availableParallelism());
const threads: Thread[] = [];
let broken = false;
let useNative = true;
let backend = 'none yet';
let nextId = 1;

// One-shot: 1.11x the CPU of one hash over the same 16 KiB units, createHash().update().digest() 1.18x.
const onThread = (bufs: Uint8Array[]): Buffer => Buffer.concat(bufs.map((b) => hash('sha256', b, 'buffer')));

/** The lengths of the pieces of `len` bytes of `unit` bytes each (the last one shorter). */
const unitLens = (len: number, unit: number): number[] => {
  const out: number[] = [];
  for (let at = 0; at < len; at += unit) out.push(Math.min(unit, len - at));
  return out;
};

/** The pieces of `b` of `unit` bytes each (the last one shorter). */
const unitsOf = (b: Uint8Array, unit: number): Uint8Array[] => {
  const out: Uint8Array[] = [];
  for (let at = 0; at < b.length; at += unit) out.push(b.subarray(at, Math.min(at + unit, b.length)));
  return out;
};

function fail(t: Thread): void {
  broken = true;
  const k = threads.indexOf(t);
  if (k < 0) return;
  threads.splice(k, 1);
  for (const p of t.jobs.values()) p.resolve(p.here());
  t.jobs.clear();
}

function start(): Thread {
  // execArgv []: not the host's loaders (--import hooks would load into this thread too).
  const w = new Worker(WORKER, { eval: true, execArgv: [], workerData: { koffi: koffiPath(), native: useNative } });
  const t: Thread = { w, jobs: new Map(), bytes: 0 };
  w.unref();
  w.on('message', (m: { id: number; sums: Uint8Array } | { backend: string }) => {
    if ('backend' in m) {
      backend = m.backend;
      return;
    }
    const p = t.jobs.get(m.id);
    if (!p) return;
    t.jobs.delete(m.id);
    t.bytes -= p.bytes;
    if (t.jobs.size === 0) w.unref();
    if (p.slab) giveSlab(p.slab);
    p.resolve(Buffer.from(m.sums.buffer, m.sums.byteOffset, m.sums.byteLength));
  });
  w.on('error', () => fail(t));
  w.on('exit', () => fail(t));
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
  if (first.jobs.size < DEEP || idleCpus() < 0.5) return first;
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
    all = await post(t, { here: () => onThread(bufs), slab, bytes, resolve: () => {} }, { slab: slab.sab, off: slab.off, lens });
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
  const t = pick();
  if (!t) return Promise.resolve(onThread(unitsOf(b, unit)));
  let shared = slabOf(b);
  let own: Slab | null = null;
  if (!shared) {
    shared = own = takeSlab(b.length);
    new Uint8Array(own.sab, own.off, b.length).set(b);
  }
  const here = () => onThread(unitsOf(b, unit));
  return post(t, { here, slab: own, bytes: b.length, resolve: () => {} }, { slab: shared.sab, off: shared.off, lens: unitLens(b.length, unit) });
}

/** sha256Units on the caller's thread (a chunk or two: a reader waits, and the trip to the thread costs more). */
export const sha256UnitsHere = (b: Buffer, unit: number): Buffer => onThread(unitsOf(b, unit));

function post(t: Thread, p: Pending, msg: { slab: SharedArrayBuffer; off: number; lens: number[] }): Promise<Buffer> {
  const id = nextId++;
  return new Promise<Buffer>((resolve) => {
    t.jobs.set(id, { ...p, resolve });
    t.bytes += p.bytes;
    t.w.ref(); // a hash under way keeps the process alive until it answers
    t.w.postMessage({ id, ...msg });
  });
}

/** What hashes (bench/hash-units.ts, tests): the threads' backend, how many run, whether one failed. */
export const hasherInfo = (): { backend: string; threads: number; broken: boolean } => ({ backend, threads: threads.length, broken });

/**
 * Tests and bench/hash-units.ts only, before the first hash: threads hash with node:crypto
 * (native false) or try OpenSSL by address first; at most `threads` of them.
 */
export function configureHasherForTests(o: { native?: boolean; threads?: number }): void {
  useNative = o.native ?? useNative;
  maxThreads = o.threads ?? maxThreads;
}
