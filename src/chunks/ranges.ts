// Half-open integer ranges [start, end): byte ranges of events and chunk-index runs.
// Pure. A range list is sorted, non-overlapping and non-adjacent (coalesced).

export interface Range {
  start: number;
  end: number; // exclusive
}

const empty = (r: Range) => r.end <= r.start;

/** Sorts and merges overlapping or adjacent ranges; drops empty ones. */
export function coalesce(list: readonly Range[]): Range[] {
  const sorted = list.filter((r) => !empty(r)).sort((a, b) => a.start - b.start);
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ start: r.start, end: r.end });
  }
  return out;
}

/** A new coalesced list with `r` added. */
export function insert(list: readonly Range[], r: Range): Range[] {
  return coalesce([...list, r]);
}

/** The parts of `want` not covered by the coalesced list `present`. */
export function findMissing(present: readonly Range[], want: Range): Range[] {
  const out: Range[] = [];
  let pos = want.start;
  for (const p of present) {
    if (pos >= want.end) break;
    if (p.end <= pos) continue;
    if (p.start >= want.end) break;
    if (p.start > pos) out.push({ start: pos, end: p.start });
    pos = Math.max(pos, p.end);
  }
  if (pos < want.end) out.push({ start: pos, end: want.end });
  return out;
}

/** True when `want` is wholly covered (an empty range always is). */
export function present(list: readonly Range[], want: Range): boolean {
  return empty(want) || findMissing(list, want).length === 0;
}

/** Clamps a byte range to [0, size); null when nothing is left. */
export function clampToSize(offset: number, length: number, size: number): Range | null {
  const start = Math.max(0, offset);
  const end = Math.min(offset + length, size);
  return end > start ? { start, end } : null;
}

/** The chunk indices a byte range touches. */
export function chunkSpan(bytes: Range, chunk: number): Range {
  return { start: Math.floor(bytes.start / chunk), end: Math.ceil(bytes.end / chunk) };
}

/** Byte range of chunk `i` in an object of `size` bytes. */
export function chunkBytes(i: number, chunk: number, size: number): Range {
  return { start: i * chunk, end: Math.min((i + 1) * chunk, size) };
}
