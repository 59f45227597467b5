// Sequential-access detection and a read-ahead window that grows with what the reader
// has consumed, like the kernel's: nothing for a lone read or a few small ones; once a
// stream has read `minRun` bytes in order, fetch ahead as much as it has read (whole
// chunks), up to the tier's `readahead`: a reader that stops has been fetched at most
// about twice what it read (`head -c 1M`), one that goes on finds its next bytes there
// and the window doubles with every window it reads. A jump starts a new stream. Pure.

export interface ReadaheadState {
  prevStart: number;
  prevEnd: number;
  runStart: number; // where the current sequential stream began
  window: number; // bytes ahead of the current read
}

export const initialReadahead = (): ReadaheadState => ({ prevStart: -1, prevEnd: -1, runStart: 0, window: 0 });

export interface ReadaheadOpts {
  chunk: number;
  max: number;
  /** Bytes a stream must have read in order before any read-ahead (default 64 KiB). */
  minRun?: number;
}

/**
 * Feeds one access [start, end) and returns the next state and the byte range to fetch
 * ahead (length 0: none). A read that starts inside or right at the end of the previous
 * one continues the stream (page rounding makes odd-sized reads overlap).
 */
export function feed(s: ReadaheadState, start: number, end: number, o: ReadaheadOpts): { state: ReadaheadState; ahead: { offset: number; length: number } } {
  const sequential = s.prevEnd >= 0 && start >= s.prevStart && start <= s.prevEnd;
  const runStart = sequential ? s.runStart : start;
  const run = end - runStart;
  let window = 0;
  if (sequential && o.max > 0 && run >= (o.minRun ?? 64 * 1024)) {
    window = Math.min(o.max, Math.ceil(run / o.chunk) * o.chunk);
  }
  return { state: { prevStart: start, prevEnd: end, runStart, window }, ahead: { offset: end, length: window } };
}
