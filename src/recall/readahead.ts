// Sequential-access detection and a read-ahead window that grows with what the reader
// has consumed, like the kernel's: nothing for a lone read or a few small ones; once a
// stream has read `minRun` bytes in order, fetch ahead as much as it has read (whole
// chunks), up to the tier's `readahead`, and never so much that what the stream has
// caused to be fetched (its chunks, read or ahead, and the sums they need: `sums`) passes
// twice what it read. A reader that stops has been fetched at most twice what it read
// (`head -c 1M`), one that goes on finds its next bytes there and the window doubles
// with every window it reads. A jump starts a new stream. A stream that reads backward
// (`tail -n` and `tac` read a file from its end in blocks; SQLite's integrity_check walks
// long runs of pages downward) gets the same window below it: the kernel has no such
// read-ahead, but a page cache miss costs it a disk read, and ours a round trip to the tier
// per chunk. Pure.

import type { SumsCost } from '../chunks/sums-fetch.js';

export interface ReadaheadState {
  prevStart: number;
  prevEnd: number;
  runStart: number; // where the current sequential stream began
  runEnd: number; // where the current backward stream began (the end of its first read)
  down: boolean; // the current stream reads backward: its window lies below the read
  window: number; // bytes ahead of the current read (below it when `down`)
}

export const initialReadahead = (): ReadaheadState => ({ prevStart: -1, prevEnd: -1, runStart: 0, runEnd: 0, down: false, window: 0 });

export interface ReadaheadOpts {
  chunk: number;
  max: number;
  /** Bytes a stream must have read in order before any read-ahead (default 64 KiB). */
  minRun?: number;
  /** Absent: sums cost nothing (a copy without them, or one recalled whole). */
  sums?: SumsCost;
}

/** Bytes of sums chunks [c0, c1) need, counted as if none were loaded yet. */
export function sumsBytes(s: SumsCost | undefined, c0: number, c1: number): number {
  if (!s) return 0;
  if (s.perBlock <= 0 || s.block <= 0) return s.once;
  const b0 = Math.floor(c0 / s.perBlock);
  const from = b0 * s.block <= s.join ? 0 : b0;
  return s.once + (Math.ceil(c1 / s.perBlock) - from) * s.block;
}

/**
 * The read-ahead window of a stream that read [runStart, end) in order: at most what it
 * read (whole chunks) and `max`, and no more than keeps everything the stream fetches,
 * chunks [runStart's, window end's) and their sums, within twice what it read.
 */
export function windowFor(runStart: number, end: number, o: ReadaheadOpts): number {
  const run = end - runStart;
  if (o.max <= 0 || run < (o.minRun ?? 64 * 1024)) return 0;
  const c = o.chunk;
  const c0 = Math.floor(runStart / c);
  const cost = (c1: number) => (c1 - c0) * c + sumsBytes(o.sums, c0, c1);
  // The largest last chunk (exclusive) within budget: the data-only bound, then down.
  let c1 = c0 + Math.floor((2 * run - sumsBytes(o.sums, c0, c0)) / c);
  while (c1 > c0 && cost(c1) > 2 * run) c1--;
  const e1 = Math.min(c1 * c, end + Math.min(o.max, Math.ceil(run / c) * c));
  return Math.max(0, e1 - end);
}

/**
 * windowFor for a backward stream that read [start, runEnd) from its end down: the window
 * below `start`, by the same rules (at most what it read, `max`, and everything the stream
 * fetched, chunks [window start's, runEnd's) and their sums, within twice what it read).
 */
export function windowBelow(start: number, runEnd: number, o: ReadaheadOpts): number {
  const run = runEnd - start;
  if (o.max <= 0 || run < (o.minRun ?? 64 * 1024)) return 0;
  const c = o.chunk;
  const c1 = Math.ceil(runEnd / c);
  const cost = (c0: number) => (c1 - c0) * c + sumsBytes(o.sums, c0, c1);
  // The lowest first chunk within budget: the data-only bound, then up.
  let c0 = Math.max(0, c1 - Math.floor((2 * run - sumsBytes(o.sums, c1, c1)) / c));
  while (c0 < c1 && cost(c0) > 2 * run) c0++;
  const e0 = Math.max(c0 * c, start - Math.min(o.max, Math.ceil(run / c) * c));
  return Math.max(0, start - e0);
}

/**
 * Feeds one access [start, end) and returns the next state and the byte range to fetch
 * ahead (length 0: none). A read that starts inside or right at the end of the previous
 * one continues the stream (page rounding makes odd-sized reads overlap); one that ends
 * inside or right at the start of the previous one, starting below it, continues a
 * backward stream.
 */
export function feed(s: ReadaheadState, start: number, end: number, o: ReadaheadOpts): { state: ReadaheadState; ahead: { offset: number; length: number } } {
  const seen = s.prevEnd >= 0;
  const sequential = seen && start >= s.prevStart && start <= s.prevEnd;
  const backward = seen && !sequential && start < s.prevStart && end >= s.prevStart && end <= s.prevEnd;
  if (backward) {
    const runEnd = s.down ? s.runEnd : s.prevEnd;
    const window = windowBelow(start, runEnd, o);
    return { state: { prevStart: start, prevEnd: end, runStart: start, runEnd, down: true, window }, ahead: { offset: start - window, length: window } };
  }
  const runStart = !sequential ? start : s.down ? s.prevStart : s.runStart;
  const window = sequential ? windowFor(runStart, end, o) : 0;
  return { state: { prevStart: start, prevEnd: end, runStart, runEnd: end, down: false, window }, ahead: { offset: end, length: window } };
}

/**
 * The window of a result fed without `o.sums` (the event thread's: recall/fast-path.ts),
 * recomputed with them: never larger.
 */
export function rebudget(fed: { state: ReadaheadState; ahead: { offset: number; length: number } }, o: ReadaheadOpts): { offset: number; length: number } {
  if (fed.ahead.length === 0) return fed.ahead;
  const st = fed.state;
  if (st.down) {
    const length = Math.min(fed.ahead.length, windowBelow(st.prevStart, st.runEnd, o));
    return { offset: st.prevStart - length, length };
  }
  return { offset: fed.ahead.offset, length: Math.min(fed.ahead.length, windowFor(st.runStart, st.prevEnd, o)) };
}
