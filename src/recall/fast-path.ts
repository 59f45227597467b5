// The resident fast path: which events the event thread (event-thread.ts) answers on its
// own, and the grants through which the handler tells it what is resident. Pure.
//
// Rules (why: docs/recall.md, "The event thread"):
// - The thread answers FAN_ALLOW alone only for a FAN_PRE_ACCESS with a range, on an inode
//   the handler granted, while the file still has the copy's (size, mtime) (else it was
//   written or truncated: the handler must see it), when every chunk under the range is
//   resident in the grant. Everything else (unknown inodes, missing chunks) goes to the
//   handler. Read-ahead a read on resident chunks wants is asked of the handler without
//   holding the reader (an 'ahead' message with a dup of the event fd, after the answer),
//   once per chunk: the grant remembers what it asked (`asked`), so a stream asks about
//   once per run, not at every read while its window is in flight.
// - Opens (FAN_OPEN_PERM) it answers alone only for a released or partial file the handler
//   holds no state for (hold/unhold), not an exec, not this process, opener not in
//   whole_file_for: the handler would answer ALLOW at once too, or (a file written since
//   release) recall it whole, which its first access, raising an event like every access
//   after the open, then does. It also answers the open of a never-released file under our
//   filesystem mark (same conditions), silencing it with an ignore mark exactly as the
//   handler would (marks.ts MarksView). Everything else about opens is the handler's.
// - A grant's bits are never ahead of the handler's map: the handler sends them after its
//   fills, and revokes a grant before anything that could turn a resident chunk into a
//   hole (forget before a partial re-release punches, markReleased, unmark, eviction,
//   completion). A punch needs a write lease, which fails while any reader holds the file
//   open, so no event the thread still decides on can race one.
// - A granted inode's read-ahead state lives in the thread: it feeds every event of that
//   inode and hands its result to the handler with a forwarded event, so streams stay
//   sequential across events answered by either side.
import type { MessagePort } from 'node:worker_threads';
import type { FanEvent } from '../kernel/fanotify.js';
import { chunkSpan, clampToSize } from '../chunks/ranges.js';
import { ResidentMap } from '../chunks/resident.js';
import { feed, type ReadaheadState } from './readahead.js';
import type { SumsCost } from '../chunks/sums-fetch.js';
import type { SharedMarks } from './marks.js';

/** Largest run of chunks one GET fetches (handler.ts); read-ahead tops up once about this much is missing. */
export const RUN_BYTES = 2 * 1024 * 1024;

export interface Grant {
  id: string; // dev:ino
  /** The copy's size and mtime: the file must still have them. */
  size: number;
  mtimeNs: bigint;
  chunk: number;
  readahead: number;
  /** aheadWanted's topUp for the file's tier. */
  topUp: number;
  bits: Uint8Array;
  ra: ReadaheadState;
  /** What the copy's sums cost a stream (readahead.ts windowFor); absent: nothing. */
  sums?: SumsCost;
}

/**
 * hold/unhold: the handler caches state for this inode (from its first event until it drops
 * it): its opens are the handler's (a completion may be under way, which an open waits for).
 */
export type GrantMsg =
  | { t: 'grant'; g: Grant }
  | { t: 'bits'; id: string; bits: Uint8Array }
  | { t: 'revoke'; id: string }
  | { t: 'hold'; id: string }
  | { t: 'unhold'; id: string };

/** The read-ahead result the thread computed for a forwarded event (handler uses it instead of feeding again). */
export interface Fed {
  state: ReadaheadState;
  ahead: { offset: number; length: number };
}

/**
 * Read-ahead worth starting: `missing` chunks of `ahead` are not resident. Like the
 * kernel's async marker: only once a good part of the window is consumed (half of it, at
 * most `topUp`), so each GET is a run, not the chunk or two one read uncovered; always
 * when the window reaches EOF (or the file's start: a backward stream's). `topUp`: the
 * tier's longest read-ahead GET (fill.ts streamGetBytes): an S3 stream tops up 8 MiB of a
 * 16 MiB window in one GET.
 */
export function aheadWanted(missing: number, chunk: number, ahead: { start: number; end: number }, copySize: number, topUp = RUN_BYTES): boolean {
  const least = Math.min(topUp, Math.floor((ahead.end - ahead.start) / 2));
  return !(missing * chunk < least && ahead.end < copySize && ahead.start > 0);
}

interface View {
  g: Grant;
  map: ResidentMap;
  /** Chunks whose read-ahead this thread asked for (forwarded or 'ahead'): not asked again. */
  asked: ResidentMap;
  sec: number; // the grant's mtime, split as statx gives it
  nsec: number;
}

/** The table's key of an inode: dev and the inode number's two 32-bit halves (exact, no BigInt per event). */
export function statKey(dev: number, inoHi: number, inoLo: number): string {
  return `${dev}:${inoHi}:${inoLo}`;
}

/** statKey of a handler id `dev:ino` (decimal). */
export function keyOfId(id: string): string {
  const [dev, ino] = id.split(':');
  const i = BigInt(ino!);
  return statKey(Number(dev), Number(i >> 32n), Number(i & 0xffffffffn));
}

export class GrantTable {
  private readonly views = new Map<string, View>();
  private readonly holds = new Set<string>();

  get size(): number {
    return this.views.size;
  }

  /** The handler holds state for the inode `key` (statKey): its opens go there. */
  held(key: string): boolean {
    return this.holds.has(key);
  }

  apply(m: GrantMsg): void {
    if (m.t === 'hold') this.holds.add(keyOfId(m.id));
    else if (m.t === 'unhold') this.holds.delete(keyOfId(m.id));
    else if (m.t === 'grant') {
      const { g } = m;
      const map = new ResidentMap(Math.ceil(g.size / g.chunk), Buffer.from(g.bits));
      this.views.set(keyOfId(g.id), { g, map, asked: new ResidentMap(map.chunks), sec: Number(g.mtimeNs / 1_000_000_000n), nsec: Number(g.mtimeNs % 1_000_000_000n) });
    } else if (m.t === 'bits') {
      const v = this.views.get(keyOfId(m.id));
      if (v) v.map = new ResidentMap(v.map.chunks, Buffer.from(m.bits));
    } else {
      this.views.delete(keyOfId(m.id));
    }
  }

  /**
   * One FAN_PRE_ACCESS on the inode `key` (statKey) whose fd has (size, mtime) now.
   * `allow`: answer it here; then `fed`, when set, is read-ahead to ask of the handler
   * after the answer. Not `allow`: `fed` (when granted) is the read-ahead result the
   * handler must use.
   */
  decide(key: string, size: number, mtime: { sec: number; nsec: number }, range: { offset: number; count: number }): { allow: boolean; fed?: Fed } {
    const v = this.views.get(key);
    if (!v) return { allow: false };
    const g = v.g;
    // A count of 0 ("to end of file") and a changed file are the handler's.
    if (range.count === 0) return { allow: false };
    const fed = feed(g.ra, range.offset, range.offset + range.count, { chunk: g.chunk, max: g.readahead, ...(g.sums ? { sums: g.sums } : {}) });
    g.ra = fed.state;
    if (size !== g.size || mtime.sec !== v.sec || mtime.nsec !== v.nsec) return { allow: false, fed };
    // Read-ahead to ask for: chunks of the window neither resident nor asked already, once
    // they make a run worth a GET (aheadWanted). The handler starts it either way below.
    // Counted without an array: this runs for every read of a stream (a 16 MiB window is 1024 chunks).
    let ask = false;
    const ahead = clampToSize(fed.ahead.offset, fed.ahead.length, g.size);
    if (ahead) {
      const span = chunkSpan(ahead, g.chunk);
      const end = Math.min(span.end, v.map.chunks);
      let todo = 0;
      for (let i = span.start; i < end; i++) if (!v.map.has(i) && !v.asked.has(i)) todo++;
      if (todo > 0 && aheadWanted(todo, g.chunk, ahead, g.size, g.topUp)) {
        for (let i = span.start; i < end; i++) if (!v.map.has(i)) v.asked.set(i);
        ask = true;
      }
    }
    const want = clampToSize(range.offset, range.count, g.size);
    if (want && v.map.anyMissing(chunkSpan(want, g.chunk))) return { allow: false, fed };
    return ask ? { allow: true, fed } : { allow: true };
  }
}

// The thread's start-up data and messages (event-thread.ts <-> service.ts).
export interface EventThreadData {
  groupFd: number;
  /** Answer opens of released files here (pre-content mode; see openHere in event-thread.ts). */
  opens: boolean;
  /** The recall settings' whole_file_for: such openers go to the handler. */
  wholeFileFor: string[];
  inflightPath: string;
  /** Marks' shared state (marks.ts MarksView): never-released files under our filesystem mark are silenced here. */
  marks: SharedMarks | null;
  /** [0]: 1 = stop reading (set by the main thread). */
  ctl: Int32Array;
  /** Counters this thread alone writes: see C_* below. */
  counters: Float64Array;
  /** Main -> thread: GrantMsg, drained synchronously. Thread -> main: ThreadMsg. */
  port: MessagePort;
}

export const C_EVENTS = 0; // events answered here
export const C_ALLOWED = 1;
export const C_DENIED = 2;
export const C_READ_ERRORS = 3;
export const C_SPUN = 4; // events found by adaptive polling (answered without a blocking poll)
export const C_SILENCED = 5; // never-released files allowed here with an ignore mark (marks.ts)
export const COUNTERS = 6;

export type ThreadMsg =
  | { t: 'ready' }
  | { t: 'ev'; ev: FanEvent; fed?: Fed }
  /** Read-ahead for an event answered here: `ev.fd` is a dup of its fd, the handler's to close. */
  | { t: 'ahead'; ev: FanEvent; fed: Fed }
  | { t: 'log'; level: 'warn' | 'error'; msg: string; fields: Record<string, unknown> }
  | { t: 'stopped' };
