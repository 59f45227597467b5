// The recall service: reads permission events from the fanotify group (created by the
// supervisor and inherited), runs the handler for each, and answers every one.
//
// Invariants:
// - Every event with an fd gets exactly one answer, written in a `finally`: ALLOW only
//   when the handler returned it, FAN_DENY_ERRNO(EIO) for anything thrown (tier error,
//   timeout, bug).
// - Before an event is handled its fd number is covered by the in-flight record, so a
//   successor can answer it if this process dies (inflight.ts).
// - read() errors on the group fd (ETXTBSY for a running binary) are logged, never fatal.
// - The poll handle is kept referenced: a collected handle ends the process.
import type { RecallSettings, TierTuning } from '../dsl/ast.js';
import { DEFAULT_TUNING } from '../dsl/ast.js';
import { FAN_ALLOW, FAN_DENY_EIO, FAN_OPEN_PERM, FAN_Q_OVERFLOW, decodeEvents, respond, type FanEvent } from '../kernel/fanotify.js';
import { fcntl, pollReadable, type PollHandle } from '../kernel/libc.js';
import { read } from 'node:fs';
import type { Logger } from '../log.js';
import type { Tier } from '../tiers/tier.js';
import { FdRef } from './fdref.js';
import { RecallHandler } from './handler.js';
import { InflightRecord } from './inflight.js';
import { Marks } from './marks.js';
import { inodeId, type CachedResident } from './inode.js';
import { commOf, pathOfFd } from './proc.js';

export interface RecallLogRecord {
  time: number; // ms since epoch, when the event arrived
  path: string;
  offset: number;
  length: number;
  /** Bytes fetched from the tier for this event (0: answered from the resident map). */
  bytes: number;
  whole: boolean;
  latencyMs: number;
  pid: number;
  comm: string;
  error?: string;
}

export interface RecallServiceOptions {
  groupFd: number; // created by the supervisor, inherited
  mode: 'pre-content' | 'content'; // content = fallback: whole-file recall on FAN_OPEN_PERM
  tiers: Map<string, Tier>;
  settings: RecallSettings;
  inflightPath: string;
  log: Logger;
  onRecall?: (rec: RecallLogRecord) => void;
  /** Per-tier tuning (chunk fetch timeout, read-ahead, concurrency); else tier.tuning, else defaults. */
  tuning?: Map<string, TierTuning>;
}

export interface RecallStats {
  mode: 'pre-content' | 'content';
  events: number;
  allowed: number;
  denied: number;
  inFlight: number;
  bytesFetched: number;
  readErrors: number;
  /** Marks added through markReleased(). */
  marksAdded: number;
  /** Marks removed: unmark() and files that became whole. */
  marksRemoved: number;
  cachedInodes: number;
  staleAnswered: number;
}

const READ_BUF = 64 * 1024;
const F_DUPFD_CLOEXEC = 1030;

/**
 * A no-notify fd for the engine (re-releasing a partial file, engine/release-partial.ts):
 * the event fd of this process's own next FAN_OPEN_PERM on an inode, dup'd. The kernel
 * opens event fds with FMODE_NONOTIFY, so a punch through it raises no event.
 */
export interface OwnOpenCapture {
  /** Set (synchronously, before the open is allowed) once the event was captured. */
  fd: number | null;
  cancel(): void;
}

/** A tier's own tuning when it came from a policy, else defaults. */
function tierTuning(t: Tier): TierTuning {
  return t.tuning ?? DEFAULT_TUNING;
}

const CAPTURED = { response: FAN_ALLOW, bytes: 0, whole: false };

export class RecallService {
  private readonly handler: RecallHandler;
  private readonly inflight: InflightRecord;
  private readonly buf = Buffer.alloc(READ_BUF);
  private readonly pending = new Set<Promise<void>>();
  private poll: PollHandle | null = null;
  private reading = false;
  private readEnded: (() => void) | null = null;
  private readonly s: RecallStats;
  /** dev:ino -> pending capture of this process's own open event (usually empty). */
  private readonly captures = new Map<string, OwnOpenCapture>();
  /** How released files get their events: filesystem marks where allowed, else inode marks (marks.ts). */
  readonly marks: Marks;

  constructor(private readonly o: RecallServiceOptions) {
    this.marks = new Marks(o.groupFd, o.mode);
    this.inflight = new InflightRecord(o.inflightPath);
    this.s = {
      mode: o.mode,
      events: 0,
      allowed: 0,
      denied: 0,
      inFlight: 0,
      bytesFetched: 0,
      readErrors: 0,
      marksAdded: 0,
      marksRemoved: 0,
      cachedInodes: 0,
      staleAnswered: 0,
    };
    this.handler = new RecallHandler({
      groupFd: o.groupFd,
      mode: o.mode,
      tiers: o.tiers,
      settings: o.settings,
      log: o.log,
      tuningOf: (t) => o.tuning?.get(t.name) ?? tierTuning(t),
      marks: this.marks,
    });
  }

  /** Answers what a dead predecessor left unanswered (EIO), then serves. */
  async start(): Promise<void> {
    if (this.poll) return;
    this.s.staleAnswered = this.inflight.answerStale(this.o.groupFd);
    if (this.s.staleAnswered > 0) this.o.log.warn('answered events a previous worker left', { count: this.s.staleAnswered });
    this.poll = pollReadable(this.o.groupFd, () => this.drain());
  }

  /** Stops reading; events already read are still answered before this resolves. */
  async stop(): Promise<void> {
    this.poll?.close();
    this.poll = null;
    if (this.reading) await new Promise<void>((r) => (this.readEnded = r));
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    await this.handler.idle();
  }

  /** Resolves once no work runs after an answer (read-ahead, a file's completion and record), on one inode or on all. */
  settled(id?: string): Promise<void> {
    return id === undefined ? this.handler.idle() : this.handler.settled(id);
  }

  markReleased(fd: number): void {
    this.marks.released(fd);
    this.handler.forget(inodeId(fd));
    this.s.marksAdded++;
  }

  unmark(fd: number): void {
    this.marks.unmark(fd);
    this.handler.forget(inodeId(fd));
    this.s.marksRemoved++;
  }

  /** Captures this process's next FAN_OPEN_PERM on dev:ino (see OwnOpenCapture); null when one is pending. */
  captureOwnOpen(id: string): OwnOpenCapture | null {
    if (this.captures.has(id)) return null;
    const c: OwnOpenCapture = { fd: null, cancel: () => this.captures.get(id) === c && this.captures.delete(id) };
    this.captures.set(id, c);
    return c;
  }

  /** Chunk fetches under way for dev:ino. */
  fetching(id: string): boolean {
    return this.handler.fetching(id);
  }

  /** The in-memory resident map of dev:ino (a copy), ahead of the on-disk bitmap when storing it failed; null: not cached. */
  cachedResident(id: string): CachedResident | null {
    return this.handler.cachedResident(id);
  }

  /** Drops the cached state of dev:ino: its resident map must not answer reads over new holes. */
  forget(id: string): void {
    this.handler.forget(id);
  }

  stats(): RecallStats {
    return { ...this.s, cachedInodes: this.handler.cachedInodes, marksRemoved: this.s.marksRemoved + this.handler.marksRemoved };
  }

  /**
   * Reads until EAGAIN, one read at a time, on the libuv threadpool: creating an event fd
   * opens the file, which must break any lease on it. The engine holds leases in this
   * process while it releases, and its SIGIO handler must run on the event loop to
   * unlock. Measured: a read() on the main thread of the lease holder fails at once
   * (EAGAIN) and the kernel denies the event (the reader gets EPERM); on a threadpool
   * thread it waits for the break, SIGIO runs, the engine unlocks, the event arrives.
   */
  private drain(): void {
    if (this.reading) return;
    this.reading = true;
    let errors = 0;
    const done = (): void => {
      this.reading = false;
      this.readEnded?.();
      this.readEnded = null;
    };
    const next = (): void => {
      read(this.o.groupFd, this.buf, 0, this.buf.length, null, (err, n) => {
        if (err) {
          if (err.code === 'EAGAIN' || !this.poll || ++errors > 64) return done();
          // ETXTBSY (event on a running binary: the reader gets EPERM), EMFILE, ...
          this.s.readErrors++;
          this.o.log.warn('fanotify read failed', { op: 'read', err });
          next();
          return;
        }
        if (n > 0) for (const ev of decodeEvents(this.buf, n)) this.dispatch(ev);
        if (n > 0 && this.poll) next();
        else done();
      });
    };
    next();
  }

  private dispatch(ev: FanEvent): void {
    if (ev.fd < 0) {
      if (ev.mask & FAN_Q_OVERFLOW) this.o.log.error('fanotify queue overflow', { op: 'read' });
      return;
    }
    this.s.events++;
    this.s.inFlight++;
    const p = this.serve(ev).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Our own open of a captured inode: dup its event fd for the engine, allow. */
  private captured(ev: FanEvent): boolean {
    if (this.captures.size === 0 || ev.pid !== process.pid || (ev.mask & FAN_OPEN_PERM) === 0) return false;
    const id = inodeId(ev.fd);
    const c = this.captures.get(id);
    if (!c) return false;
    this.captures.delete(id);
    c.fd = fcntl(ev.fd, F_DUPFD_CLOEXEC, 0); // a throw answers EIO: the engine's open fails
    return true;
  }

  private async serve(ev: FanEvent): Promise<void> {
    const t0 = Date.now();
    const ref = new FdRef(ev.fd);
    let response = FAN_DENY_EIO;
    let bytes = 0;
    let whole = false;
    let error: string | undefined;
    let path = '';
    let comm = '';
    try {
      this.inflight.note(ev.fd);
      const out = this.captured(ev) ? CAPTURED : await this.handler.handle(ev, ref, (n) => (this.s.bytesFetched += n));
      response = out.response;
      bytes = out.bytes;
      whole = out.whole;
    } catch (e) {
      response = FAN_DENY_EIO;
      error = e instanceof Error ? e.message : String(e);
      path = pathOfFd(ev.fd);
      this.o.log.error('recall failed', { op: 'recall', path, pid: ev.pid, err: error });
    } finally {
      if (bytes > 0 || error !== undefined) {
        // While the reader is still blocked: it may be gone once answered.
        if (path === '') path = pathOfFd(ev.fd);
        if (this.o.onRecall) comm = commOf(ev.pid);
      }
      // Close before answering (an exec waiting on us denies writers next); same tick.
      ref.release();
      try {
        respond(this.o.groupFd, ev.fd, response);
      } catch (e) {
        this.o.log.error('fanotify response failed', { op: 'respond', fd: ev.fd, err: e });
      }
      this.s.inFlight--;
      if (response === FAN_ALLOW) this.s.allowed++;
      else this.s.denied++;
    }
    if (this.o.onRecall && (bytes > 0 || error !== undefined)) {
      this.o.onRecall({
        time: t0,
        path,
        offset: ev.range?.offset ?? 0,
        length: ev.range?.count ?? 0,
        bytes,
        whole,
        latencyMs: Date.now() - t0,
        pid: ev.pid,
        comm,
        error,
      });
    }
  }
}
