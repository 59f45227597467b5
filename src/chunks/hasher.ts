// SHA-256 of many buffers off the event loop, on one worker thread of its own.
// Rules:
// - not the libuv threadpool (WebCrypto's digest runs there): that pool also reads the
//   fanotify group (recall/service.ts) and the local tier's objects, and hash jobs queued
//   ahead of a group read delay every event behind them;
// - the buffers are copied (one memcpy) into a SharedArrayBuffer slab the worker reads,
//   reused batch after batch: the caller's views stay valid and are never shared with
//   another thread while it writes them out, and no batch costs a structured clone (two
//   copies of every byte and an allocation on each side: with 2 MiB runs the clone and
//   the garbage it left were a measurable part of a cold read's time on the event loop);
// - a slab is never written while the worker may read it: it returns to the pool only
//   with the batch's answer;
// - the thread is started on first use and unref'd (it never keeps a process alive); if it
//   fails, what was pending is hashed on the caller's thread, and so is everything after.
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, slab, lens }) => {
  const all = new Uint8Array(slab);
  const out = Buffer.allocUnsafe(32 * lens.length);
  let at = 0;
  lens.forEach((n, k) => {
    createHash('sha256').update(all.subarray(at, at + n)).digest().copy(out, 32 * k);
    at += n;
  });
  parentPort.postMessage({ id, sums: out });
});`;

type Pending = { bufs: Uint8Array[]; slab: SharedArrayBuffer; resolve(sums: Buffer[]): void };

/** Slabs kept for reuse (a run of 2 MiB each; as many as runs in flight, about). */
const KEEP_SLABS = 8;
const SLAB_UNIT = 1024 * 1024;
const slabs: SharedArrayBuffer[] = [];

function takeSlab(bytes: number): SharedArrayBuffer {
  const k = slabs.findIndex((s) => s.byteLength >= bytes);
  if (k >= 0) return slabs.splice(k, 1)[0]!;
  return new SharedArrayBuffer(Math.max(SLAB_UNIT, Math.ceil(bytes / SLAB_UNIT) * SLAB_UNIT));
}

function giveSlab(s: SharedArrayBuffer): void {
  if (slabs.length < KEEP_SLABS) slabs.push(s);
}

let worker: Worker | null = null;
let broken = false;
let nextId = 1;
const pending = new Map<number, Pending>();

const onThread = (bufs: Uint8Array[]): Buffer[] => bufs.map((b) => createHash('sha256').update(b).digest());

function fail(): void {
  broken = true;
  worker = null;
  for (const p of pending.values()) p.resolve(onThread(p.bufs));
  pending.clear();
}

function start(): Worker {
  // execArgv []: not the host's loaders (--import hooks would load into this thread too).
  const w = new Worker(WORKER, { eval: true, execArgv: [] });
  w.unref();
  w.on('message', (m: { id: number; sums: Uint8Array }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) w.unref();
    giveSlab(p.slab);
    const all = Buffer.from(m.sums.buffer, m.sums.byteOffset, m.sums.byteLength);
    p.resolve(p.bufs.map((_, k) => all.subarray(32 * k, 32 * k + 32)));
  });
  w.on('error', fail);
  w.on('exit', () => worker === w && fail());
  return w;
}

/** The SHA-256 of each buffer, in order. */
export function sha256Off(bufs: Uint8Array[]): Promise<Buffer[]> {
  if (broken || bufs.length === 0) return Promise.resolve(onThread(bufs));
  worker ??= start();
  const id = nextId++;
  const slab = takeSlab(bufs.reduce((n, b) => n + b.length, 0));
  const view = new Uint8Array(slab);
  let at = 0;
  for (const b of bufs) {
    view.set(b, at);
    at += b.length;
  }
  return new Promise<Buffer[]>((resolve) => {
    pending.set(id, { bufs, slab, resolve });
    worker!.ref(); // a hash under way keeps the process alive until it answers
    worker!.postMessage({ id, slab, lens: bufs.map((b) => b.length) });
  });
}
