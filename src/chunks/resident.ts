// The resident map of a partially recalled file: bit i set = chunk i is on disk (the
// filesystem witnesses durability: fs-resident.ts). Persisted as the trusted.tier.resident
// xattr (state-record.ts) in whichever of two forms is shorter (toStored):
//   - the raw bitmap, ceil(chunks / 8) bytes (the only form before; old maps read as before);
//   - runs: LEB128 varints alternating missing-run and resident-run lengths, from chunk 0,
//     the trailing missing run left out; used only when strictly shorter than the bitmap,
//     so the length alone tells the two apart.
// A 65536-chunk file's bitmap is 8 KiB, more than an ext4 xattr block holds; as runs, the
// usual patterns (a prefix read, a few scattered reads, a stream's windows) take bytes.
// What still does not fit makes the file recall whole (recall/inode.ts persistResident). Pure.
import { findMissing, type Range } from './ranges.js';

/** Bits set in each byte value. */
const POPCOUNT = Uint8Array.from({ length: 256 }, (_, v) => {
  let n = 0;
  for (let x = v; x > 0; x >>= 1) n += x & 1;
  return n;
});

export class ResidentMap {
  private readonly bits: Buffer;
  private n = 0; // bits set: complete() is O(1) on the hot path

  constructor(
    readonly chunks: number,
    from?: Buffer | null,
  ) {
    this.bits = Buffer.alloc(Math.ceil(chunks / 8));
    // A shorter or longer stored map (malformed) is read for what it covers, never trusted beyond.
    if (from) from.copy(this.bits, 0, 0, Math.min(from.length, this.bits.length));
    const extra = this.bits.length * 8 - chunks;
    if (extra > 0 && this.bits.length > 0) this.bits[this.bits.length - 1]! &= 0xff >> extra;
    for (const byte of this.bits) this.n += POPCOUNT[byte]!; // a map per fill reaches the event thread (fast-path.ts)
  }

  has(i: number): boolean {
    return i >= 0 && i < this.chunks && (this.bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  set(i: number): void {
    if (i < 0 || i >= this.chunks) throw new RangeError(`chunk ${i} outside 0..${this.chunks - 1}`);
    if (this.has(i)) return;
    this.bits[i >> 3]! |= 1 << (i & 7);
    this.n++;
  }

  /** Undoes a set whose bitmap could not be stored (memory must never be ahead of the disk). */
  clear(i: number): void {
    if (!this.has(i)) return;
    this.bits[i >> 3]! &= ~(1 << (i & 7));
    this.n--;
  }

  count(): number {
    return this.n;
  }

  complete(): boolean {
    return this.n === this.chunks;
  }

  /** Runs of resident chunks, coalesced, ascending (whole bytes of 0x00 or 0xff skipped at once). */
  runs(): Range[] {
    const out: Range[] = [];
    const n = this.chunks;
    for (let i = 0; i < n; ) {
      while (i < n && (i & 7) === 0 && this.bits[i >> 3] === 0) i += 8;
      if (i >= n) break;
      if (!this.has(i)) {
        i++;
        continue;
      }
      const start = i;
      while (i < n) {
        if ((i & 7) === 0 && this.bits[i >> 3] === 0xff) i += 8;
        else if (this.has(i)) i++;
        else break;
      }
      out.push({ start, end: Math.min(i, n) });
    }
    return out;
  }

  /** The xattr form: runs when strictly shorter than the bitmap, else the bitmap. */
  toStored(): Buffer {
    const raw = this.bits.length;
    const out: number[] = [];
    let pos = 0;
    for (const r of this.runs()) {
      varint(out, r.start - pos);
      varint(out, r.end - r.start);
      pos = r.end;
      if (out.length >= raw) return this.toBuffer();
    }
    return out.length < raw ? Buffer.from(out) : this.toBuffer();
  }

  /** Reads either form (toStored); a malformed map is read for what it covers, never past the chunk count. */
  static fromStored(chunks: number, b: Buffer | null): ResidentMap {
    const raw = Math.ceil(chunks / 8);
    if (!b || b.length >= raw) return new ResidentMap(chunks, b);
    const m = new ResidentMap(chunks);
    let at = 0;
    let pos = 0;
    for (let resident = false; at < b.length; resident = !resident) {
      let v = 0;
      let shift = 0;
      for (;;) {
        if (at >= b.length || shift > 28) return m; // truncated or too long: what was read so far
        const x = b[at++]!;
        v += (x & 0x7f) * 2 ** shift;
        shift += 7;
        if ((x & 0x80) === 0) break;
      }
      if (resident) for (let i = pos; i < Math.min(chunks, pos + v); i++) m.set(i);
      pos += v;
      if (pos >= chunks) return m;
    }
    return m;
  }

  /** Chunk indices in `want` (clamped to the map) that are not resident. O(want). */
  missing(want: Range): number[] {
    const out: number[] = [];
    if (this.n === this.chunks) return out;
    for (let i = Math.max(0, want.start); i < Math.min(want.end, this.chunks); i++) if (!this.has(i)) out.push(i);
    return out;
  }

  /** Runs of missing chunks in `want`, for ranged requests that span several chunks. */
  missingRuns(want: Range): Range[] {
    return findMissing(this.runs(), { start: Math.max(0, want.start), end: Math.min(want.end, this.chunks) });
  }

  toBuffer(): Buffer {
    return Buffer.from(this.bits);
  }
}

function varint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}
