// The shared memory the hasher reads (hasher.ts): run buffers a tier reads into, hashed in
// place, written out, then reused; and slabs for copies of other buffers.
// Rules:
// - a run of up to SLAB bytes takes a slot of one arena, allocated once, whose 2 MiB-aligned
//   slots are advised as huge pages before anything touches them (kernel/libc.ts
//   adviseHugePages): a thread hashing 16 KiB units another thread had just written, 8 runs
//   in flight, took 437 ms of CPU per 512 MiB from 4 KiB pages and 328 ms from huge ones (a
//   C loop; OpenSSL on bytes in cache: 290 ms; docs/recall.md "The verify cost"), and the
//   tier's read and the pwrite copy the same bytes through the same pages;
// - a slot is free or lent, never both, and a give frees it only through the Slab it was
//   lent as: a give twice, or a stale give after the slot was lent again to another holder,
//   is ignored, never two runs sharing memory; a slot whose buffer is dropped (a read that timed out may still
//   write into it) stays lent, never reused; once the arena is all lent, runs take plain
//   slabs, tracked the same way;
// - larger or overflow slabs are plain SharedArrayBuffers, the latest given back kept for reuse
//   up to KEEP_SLABS and KEEP_BYTES.
import { adviseHugePages } from '../kernel/libc.js';

/** A run's most bytes (recall/fast-path.ts RUN_BYTES) and a huge page's. */
export const SLAB = 2 * 1024 * 1024;
/** Slots in the arena: as many as runs in flight (the recall semaphore's default, 8). */
const ARENA_SLOTS = 8;
/** Larger slabs kept: a long S3 stream's GETs of up to 16 MiB, two in flight (recall/fill.ts fillStream); a fresh one is zeroed memory, 8 MiB of page faults per GET otherwise. */
const KEEP_SLABS = 8;
const KEEP_BYTES = 40 * 1024 * 1024;

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
  /** Each lent slot's offset, and the Slab it is lent as now. */
  lent: Map<number, Slab>;
}

let arena: Arena | null = null;
const spares: SharedArrayBuffer[] = [];
/** Plain slabs lent, and the Slab each is lent as now (weak: a dropped one is collected). */
const lentPlain = new WeakMap<SharedArrayBuffer, Slab>();

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
  return { sab, base, free, lent: new Map() };
}

/** A slab of at least `bytes`. */
export function takeSlab(bytes: number): Slab {
  if (bytes <= SLAB) {
    arena ??= makeArena();
    const off = arena.free.values().next();
    if (!off.done) {
      arena.free.delete(off.value);
      const s = { sab: arena.sab, off: off.value };
      arena.lent.set(off.value, s);
      return s;
    }
  }
  // The smallest spare that fits: a 16 MiB one (a long S3 stream's GET) is not spent on a 2 MiB run.
  let k = -1;
  for (let i = 0; i < spares.length; i++) if (spares[i]!.byteLength >= bytes && (k < 0 || spares[i]!.byteLength < spares[k]!.byteLength)) k = i;
  const sab = k >= 0 ? spares.splice(k, 1)[0]! : new SharedArrayBuffer(Math.max(SLAB / 2, Math.ceil(bytes / (SLAB / 2)) * (SLAB / 2)));
  const s = { sab, off: 0 };
  lentPlain.set(sab, s);
  return s;
}

/** Gives back the very Slab takeSlab returned (anything else, or it twice: ignored); nothing may read or write it after. */
export function giveSlab(s: Slab): void {
  if (arena && s.sab === arena.sab) {
    if (arena.lent.get(s.off) !== s) return;
    arena.lent.delete(s.off);
    arena.free.add(s.off);
    return;
  }
  if (lentPlain.get(s.sab) !== s) return;
  lentPlain.delete(s.sab);
  // Past KEEP_SLABS or KEEP_BYTES the smallest go first: a fresh big slab costs the most
  // (zeroed memory: a stream's first 2 MiB runs once pushed out the 8 MiB ones, and every
  // 8 MiB GET allocated afresh, 57 ms a round).
  spares.unshift(s.sab);
  while (spares.length > KEEP_SLABS || spares.reduce((n, x) => n + x.byteLength, 0) > KEEP_BYTES) {
    let k = 0;
    for (let i = 1; i < spares.length; i++) if (spares[i]!.byteLength < spares[k]!.byteLength) k = i;
    spares.splice(k, 1);
  }
}

/** The slab a buffer from takeRunBuf lies on (null: not one of ours). */
export function slabOf(b: Uint8Array): Slab | null {
  return b.buffer instanceof SharedArrayBuffer ? { sab: b.buffer, off: b.byteOffset } : null;
}

/** Tests only: arena slots lent now. */
export const lentSlotsForTests = (): number => arena?.lent.size ?? 0;
