// Sequential-access detection and a read-ahead window that grows like the kernel's:
// the first sequential hit opens one chunk ahead, each further one doubles it, up to
// the tier's `readahead`; a random access closes it. Pure.

export interface ReadaheadState {
  prevStart: number;
  prevEnd: number;
  window: number; // bytes ahead of the current read
}

export const initialReadahead = (): ReadaheadState => ({ prevStart: -1, prevEnd: -1, window: 0 });

export interface ReadaheadOpts {
  chunk: number;
  max: number;
}

/**
 * Feeds one access [start, end) and returns the next state and the byte range to fetch
 * ahead (possibly empty: length 0). Reads that start inside or right at the end of the
 * previous one count as sequential (page rounding makes odd-sized reads overlap).
 */
export function feed(s: ReadaheadState, start: number, end: number, o: ReadaheadOpts): { state: ReadaheadState; ahead: { offset: number; length: number } } {
  const sequential = s.prevEnd >= 0 && start >= s.prevStart && start <= s.prevEnd && end > s.prevEnd - 1;
  let window = 0;
  if (sequential && o.max > 0) window = s.window === 0 ? Math.min(o.chunk, o.max) : Math.min(s.window * 2, o.max);
  return { state: { prevStart: start, prevEnd: end, window }, ahead: { offset: end, length: window } };
}
