// The shared memory the hasher reads (hasher.ts): run buffers a tier reads into, hashed in
// place, written out, then reused; and slabs for copies of other buffers.
// Rules:
// - a run of up to SLAB bytes takes a slot of one arena, allocated once, whose 2 MiB-aligned
//   slots are advised as huge pages before anything touches them (kernel/libc.ts
//   adviseHugePages): a thread hashing 16 KiB units another thread had just written, 8 runs
//   in flight, took 437 ms of CPU per 512 MiB from 4 KiB pages and 328 ms from huge ones (a
//   C loop; OpenSSL on bytes in cache: 290 ms; docs/recall.md "The verify cost"), and the
//   tier's read and the pwrite copy the same bytes through the same pages;
// - a slot is free or lent, never both: the free slots are a set (a buffer given back twice
//   is one free slot, not two runs sharing memory); a slot whose buffer is dropped (a read
//   that timed out may still write into it) is never reused, and once the arena is all lent
//   or dropped, runs take plain slabs;
// - larger or overflow slabs are plain SharedArrayBuffers, kept for reuse up to KEEP_BYTES.
import { adviseHugePages } from '../kernel/libc.js';

/** A run's most bytes (recall/fast-path.ts RUN_BYTES) and a huge page's. */
export const SLAB = 2 * 1024 * 1024;
/** Slots in the arena: as many as runs in flight (the recall semaphore's default, 8). */
const ARENA_SLOTS = 8;
const KEEP_SLABS = 8;
const KEEP_BYTES = 16 * 1024 * 1024;

/** `bytes` at `off` of a shared buffer, lent by takeSlab until giveSlab. */
export interface Slab {
  sab: SharedArrayBuffer;
  off: number;
}

interface Arena {
  sab: SharedArrayBuffer;
  /** Offset of slot 0 (the first 2 MiB-aligned byte). */
  base: number;
  free: Set<number>;
}

let arena: Arena | null = null;
const spares: SharedArrayBuffer[] = [];

function makeArena(): Arena {
  // One slot more than needed: the slots start at the first aligned byte.
  const sab = new SharedArrayBuffer((ARENA_SLOTS + 1) * SLAB);
  let base = 0;
  try {
    base = adviseHugePages(new Uint8Array(sab));
  } catch {
    /* koffi took no address of it: no advice, 4 KiB pages, slots from 0 */
  }
  const free = new Set<number>();
  for (let k = 0; k < ARENA_SLOTS; k++) free.add(base + k * SLAB);
  return { sab, base, free };
}

/** A slab of at least `bytes`. */
export function takeSlab(bytes: number): Slab {
  if (bytes <= SLAB) {
    arena ??= makeArena();
    const off = arena.free.values().next();
    if (!off.done) {
      arena.free.delete(off.value);
      return { sab: arena.sab, off: off.value };
    }
  }
  const k = spares.findIndex((s) => s.byteLength >= bytes);
  if (k >= 0) return { sab: spares.splice(k, 1)[0]!, off: 0 };
  return { sab: new SharedArrayBuffer(Math.max(SLAB / 2, Math.ceil(bytes / (SLAB / 2)) * (SLAB / 2))), off: 0 };
}

/** Gives back a slab taken by takeSlab; nothing may read or write it after. */
export function giveSlab(s: Slab): void {
  if (arena && s.sab === arena.sab) {
    if ((s.off - arena.base) % SLAB === 0 && s.off >= arena.base) arena.free.add(s.off);
    return;
  }
  if (s.off !== 0) return;
  if (!spares.includes(s.sab) && spares.length < KEEP_SLABS && spares.reduce((n, x) => n + x.byteLength, s.sab.byteLength) <= KEEP_BYTES) spares.push(s.sab);
}

/** The slab a buffer from takeRunBuf lies on (null: not one of ours). */
export function slabOf(b: Uint8Array): Slab | null {
  return b.buffer instanceof SharedArrayBuffer ? { sab: b.buffer, off: b.byteOffset } : null;
}
