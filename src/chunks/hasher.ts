// SHA-256 of many buffers off the event loop, on one worker thread of its own.
// Rules:
// - not the libuv threadpool (WebCrypto's digest runs there): that pool also reads the
//   fanotify group (recall/service.ts) and the local tier's objects, and hash jobs queued
//   ahead of a group read delay every event behind them;
// - the bytes are in a SharedArrayBuffer slab the worker reads, reused batch after batch:
//   a run's own buffer (takeRunBuf: the tier reads into it, it is hashed in place, then
//   written out, one message per run), or a copy of the caller's buffers (sha256Off); no
//   batch costs a structured clone (two copies of every byte and an allocation on each
//   side: with 2 MiB runs the clone and the garbage it left were a measurable part of a
//   cold read's time on the event loop), and no run a fresh 2 MiB allocation;
// - a slab is never written while the worker may read it: a copied batch's slab returns to
//   the pool only with the batch's answer, a run's buffer only when its caller is done;
// - the thread is started on first use and unref'd (it never keeps a process alive); if it
//   fails, what was pending is hashed on the caller's thread, and so is everything after.
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, slab, off, lens, unit, len }) => {
  const all = new Uint8Array(slab);
  if (unit) {
    // One run: every unit-sized piece of [off, off + len), the last one shorter.
    const n = Math.ceil(len / unit);
    const out = Buffer.allocUnsafe(32 * n);
    for (let k = 0, at = off; k < n; k++, at += unit) {
      createHash('sha256').update(all.subarray(at, Math.min(at + unit, off + len))).digest().copy(out, 32 * k);
    }
    parentPort.postMessage({ id, sums: out });
    return;
  }
  const out = Buffer.allocUnsafe(32 * lens.length);
  let at = 0;
  lens.forEach((n, k) => {
    createHash('sha256').update(all.subarray(at, at + n)).digest().copy(out, 32 * k);
    at += n;
  });
  parentPort.postMessage({ id, sums: out });
});`;

/** A batch: how to hash it here if the thread fails, the slab to give back (null: the caller's), its answer. */
type Pending = { here(): Buffer; slab: SharedArrayBuffer | null; resolve(sums: Buffer): void };

/**
 * Slabs kept for reuse (a run of 2 MiB each, as many as runs in flight, about; a long S3
 * stream's GETs of up to 16 MiB, two in flight: recall/fill.ts fillStream), at most
 * KEEP_BYTES in all: a fresh slab is zeroed memory, 8 MiB of page faults per GET otherwise.
 */
const KEEP_SLABS = 8;
const KEEP_BYTES = 40 * 1024 * 1024;
const SLAB_UNIT = 1024 * 1024;
const slabs: SharedArrayBuffer[] = [];

function takeSlab(bytes: number): SharedArrayBuffer {
  // The smallest that fits: a 2 MiB run must not take the slab an 8 MiB GET needs next.
  let k = -1;
  for (let i = 0; i < slabs.length; i++) if (slabs[i]!.byteLength >= bytes && (k < 0 || slabs[i]!.byteLength < slabs[k]!.byteLength)) k = i;
  if (k >= 0) return slabs.splice(k, 1)[0]!;
  return new SharedArrayBuffer(Math.max(SLAB_UNIT, Math.ceil(bytes / SLAB_UNIT) * SLAB_UNIT));
}

function giveSlab(s: SharedArrayBuffer): void {
  // Kept, then the smallest dropped while over the limits: eight 2 MiB slabs from a stream's
  // first runs must not shut out the larger ones its long GETs need.
  slabs.push(s);
  let bytes = slabs.reduce((n, x) => n + x.byteLength, 0);
  while (slabs.length > KEEP_SLABS || bytes > KEEP_BYTES) {
    let k = 0;
    for (let i = 1; i < slabs.length; i++) if (slabs[i]!.byteLength < slabs[k]!.byteLength) k = i;
    bytes -= slabs.splice(k, 1)[0]!.byteLength;
  }
}

let worker: Worker | null = null;
let broken = false;
let nextId = 1;
const pending = new Map<number, Pending>();

const onThread = (bufs: Uint8Array[]): Buffer => Buffer.concat(bufs.map((b) => createHash('sha256').update(b).digest()));

/** The pieces of `b` of `unit` bytes each (the last one shorter). */
const unitsOf = (b: Uint8Array, unit: number): Uint8Array[] => {
  const out: Uint8Array[] = [];
  for (let at = 0; at < b.length; at += unit) out.push(b.subarray(at, Math.min(at + unit, b.length)));
  return out;
};

function fail(): void {
  broken = true;
  worker = null;
  for (const p of pending.values()) p.resolve(p.here());
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
    if (p.slab) giveSlab(p.slab);
    p.resolve(Buffer.from(m.sums.buffer, m.sums.byteOffset, m.sums.byteLength));
  });
  w.on('error', fail);
  w.on('exit', () => worker === w && fail());
  return w;
}

/** The SHA-256 of each buffer, in order. */
export async function sha256Off(bufs: Uint8Array[]): Promise<Buffer[]> {
  if (bufs.length === 0) return [];
  let all: Buffer;
  if (broken) all = onThread(bufs);
  else {
    const slab = takeSlab(bufs.reduce((n, b) => n + b.length, 0));
    const view = new Uint8Array(slab);
    let at = 0;
    for (const b of bufs) {
      view.set(b, at);
      at += b.length;
    }
    all = await post({ here: () => onThread(bufs), slab, resolve: () => {} }, { slab, lens: bufs.map((b) => b.length) });
  }
  return bufs.map((_, k) => all.subarray(32 * k, 32 * k + 32));
}

/**
 * A buffer of `bytes` over a pooled shared slab, for one run: a tier reads into it, the
 * hasher reads it in place (sha256Units: no copy), the caller writes it out, then gives it
 * back with giveRunBuf. Never give back a buffer something may still write into (a read
 * that timed out may still be running): drop it instead.
 */
export function takeRunBuf(bytes: number): Buffer {
  return Buffer.from(takeSlab(bytes), 0, bytes);
}

export function giveRunBuf(b: Buffer): void {
  if (b.buffer instanceof SharedArrayBuffer && b.byteOffset === 0) giveSlab(b.buffer);
}

/**
 * The SHA-256 of every `unit`-sized piece of `b` (the last one shorter), concatenated: one
 * message for a whole run. A view of a shared slab (takeRunBuf) is hashed in place; any
 * other buffer is copied into a slab first. `b` must not change until this resolves.
 */
export function sha256Units(b: Buffer, unit: number): Promise<Buffer> {
  if (b.length === 0) return Promise.resolve(Buffer.alloc(0));
  if (broken) return Promise.resolve(onThread(unitsOf(b, unit)));
  let slab: SharedArrayBuffer;
  let own: SharedArrayBuffer | null = null;
  let off = b.byteOffset;
  if (b.buffer instanceof SharedArrayBuffer) slab = b.buffer;
  else {
    slab = own = takeSlab(b.length);
    new Uint8Array(slab).set(b);
    off = 0;
  }
  return post({ here: () => onThread(unitsOf(b, unit)), slab: own, resolve: () => {} }, { slab, off, len: b.length, unit });
}

/** sha256Units on the caller's thread (a chunk or two: a reader waits, and the trip to the thread costs more). */
export const sha256UnitsHere = (b: Buffer, unit: number): Buffer => onThread(unitsOf(b, unit));

function post(p: Pending, msg: object): Promise<Buffer> {
  worker ??= start();
  const id = nextId++;
  return new Promise<Buffer>((resolve) => {
    pending.set(id, { ...p, resolve });
    worker!.ref(); // a hash under way keeps the process alive until it answers
    worker!.postMessage({ id, ...msg });
  });
}
