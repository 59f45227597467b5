// The resident map of a partially recalled file: bit i set = chunk i is durable on
// disk. Persisted as the trusted.tier.resident xattr (state-record.ts). Pure.
import { coalesce, findMissing, type Range } from './ranges.js';

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
    for (let i = 0; i < chunks; i++) if (this.has(i)) this.n++;
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

  /** Runs of resident chunks, coalesced. */
  runs(): Range[] {
    const out: Range[] = [];
    for (let i = 0; i < this.chunks; i++) if (this.has(i)) out.push({ start: i, end: i + 1 });
    return coalesce(out);
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
