// SHA-256 of many buffers off the event loop, on one worker thread of its own.
// Rules:
// - not the libuv threadpool (WebCrypto's digest runs there): that pool also reads the
//   fanotify group (recall/service.ts) and the local tier's objects, and hash jobs queued
//   ahead of a group read delay every event behind them;
// - the buffers are copied to the worker (structured clone): the caller's views stay
//   valid and are never shared with another thread while it writes them out;
// - the thread is started on first use and unref'd (it never keeps a process alive); if it
//   fails, what was pending is hashed on the caller's thread, and so is everything after.
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, bufs }) => {
  const sums = bufs.map((b) => createHash('sha256').update(b).digest());
  parentPort.postMessage({ id, sums });
});`;

type Pending = { bufs: Uint8Array[]; resolve(sums: Buffer[]): void };

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
  w.on('message', (m: { id: number; sums: Uint8Array[] }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) w.unref();
    p.resolve(m.sums.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength)));
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
  return new Promise<Buffer[]>((resolve) => {
    pending.set(id, { bufs, resolve });
    worker!.ref(); // a hash under way keeps the process alive until it answers
    worker!.postMessage({ id, bufs });
  });
}
