// The recall service: an event thread (event-thread.ts) reads permission events from the
// fanotify group (created by the supervisor and inherited) and answers those on resident
// ranges itself; the rest come here, where the handler runs for each and every one is
// answered.
//
// Invariants:
// - Every event with an fd gets exactly one answer: here, written in a `finally`: ALLOW
//   only when the handler returned it, FAN_DENY_ERRNO(EIO) for anything thrown (tier
//   error, timeout, bug); in the thread, likewise.
// - Before an event is handled its fd number is covered by the in-flight record, so a
//   successor can answer it if this process dies (inflight.ts; the thread writes it).
// - The event thread's death outside stop() ends this process (onThreadDeath): the
//   supervisor answers what it left (in-flight record) and starts another worker.
// - The handler's grants go to the thread before the change they guard (fast-path.ts).
// - stop() resolves only after every message the thread posted was taken: its 'exit' can
//   come first, so the exit handler drains the port before it counts the thread stopped.
import type { RecallSettings, TierTuning } from '../dsl/ast.js';
import { DEFAULT_TUNING } from '../dsl/ast.js';
import {
  FAN_ALLOW,
  FAN_DENY_EIO,
  FAN_OPEN_PERM,
  FAN_Q_OVERFLOW,
  respond,
  type FanEvent,
} from '../kernel/fanotify.js';
import { fcntl } from '../kernel/libc.js';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { StateRecord } from '../record/state-record.js';
import type { Tier } from '../tiers/tier.js';
import { FdRef } from './fdref.js';
import { RecallHandler, type AheadHook } from './handler.js';
import { InflightRecord } from './inflight.js';
import { COUNTERS, C_ALLOWED, C_DENIED, C_EVENTS, C_READ_ERRORS, C_SILENCED, C_SPUN, type EventThreadData, type Fed, type GrantMsg, type ThreadMsg } from './fast-path.js';
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
  /** Read-ahead this event's reader started, reported when it ended (bytes fetched after the answer). */
  readahead?: boolean;
}

export interface RecallServiceOptions {
  groupFd: number; // created by the supervisor, inherited
  mode: 'pre-content' | 'content'; // content = fallback: whole-file recall on FAN_OPEN_PERM
  tiers: Map<string, Tier>;
  settings: RecallSettings;
  inflightPath: string;
  log: Logger;
  onRecall?: (rec: RecallLogRecord) => void;
  /** A file became whole and its final record is written (RecallHandler's onComplete). */
  onComplete?: (dev: number, ino: number, record: StateRecord) => void;
  /** Per-tier tuning (chunk fetch timeout, read-ahead, concurrency); else tier.tuning, else defaults. */
  tuning?: Map<string, TierTuning>;
  /** The event thread died outside stop(); default: exit the process (code 70) so the supervisor takes over. */
  onThreadDeath?: (err: Error) => void;
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
  /** Events the event thread answered alone (resident ranges: fast-path.ts); part of `events`. */
  fastAnswered: number;
  /** Of those, events its adaptive polling found (no blocking poll, no wake-up). */
  fastSpun: number;
  /** Under a filesystem mark: ignore marks held (as counted), the most allowed, files let through without one. */
  ignoreMarks: { held: number; budget: number; without: number };
}

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

const THREAD = new URL(import.meta.url.endsWith('.ts') ? './event-thread.ts' : './event-thread.js', import.meta.url);

/** Under tsx (tests, bench) a worker has no loader hooks of its own: it registers tsx's, then imports the .ts entry. */
function spawnThread(data: EventThreadData): Worker {
  const opts = { workerData: data, transferList: [data.port] };
  if (!THREAD.pathname.endsWith('.ts')) return new Worker(THREAD, opts);
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${api}).then((t) => { t.register(); return import(${JSON.stringify(THREAD.href)}); })`, { ...opts, eval: true });
}

const defaultThreadDeath = (): void => process.exit(70);

export class RecallService {
  private readonly handler: RecallHandler;
  private readonly inflight: InflightRecord;
  private readonly pending = new Set<Promise<void>>();
  private thread: Worker | null = null;
  private port: MessagePort | null = null;
  private threadStopped: Promise<void> | null = null;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(4));
  private readonly counters = new Float64Array(new SharedArrayBuffer(8 * COUNTERS));
  private stopping = false;
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
      fastAnswered: 0,
      fastSpun: 0,
      ignoreMarks: { held: 0, budget: 0, without: 0 },
    };
    this.handler = new RecallHandler({
      groupFd: o.groupFd,
      mode: o.mode,
      tiers: o.tiers,
      settings: o.settings,
      log: o.log,
      tuningOf: (t) => o.tuning?.get(t.name) ?? tierTuning(t),
      ...(o.onComplete ? { onComplete: o.onComplete } : {}),
      fast: o.mode === 'pre-content' ? { post: (m: GrantMsg) => this.port?.postMessage(m) } : undefined,
      marks: this.marks,
    });
  }

  /** Answers what a dead predecessor left unanswered (EIO), then serves. */
  async start(): Promise<void> {
    if (this.thread) return;
    this.s.staleAnswered = this.inflight.answerStale(this.o.groupFd);
    if (this.s.staleAnswered > 0) this.o.log.warn('answered events a previous worker left', { count: this.s.staleAnswered });
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const thread = spawnThread({
      groupFd: this.o.groupFd,
      opens: this.o.mode === 'pre-content',
      wholeFileFor: [...this.o.settings.wholeFileFor],
      inflightPath: this.o.inflightPath,
      marks: this.o.mode === 'pre-content' ? this.marks.shared : null,
      ctl: this.ctl,
      counters: this.counters,
      port: port2,
    });
    this.thread = thread;
    let ready!: () => void;
    let failed!: (e: Error) => void;
    const started = new Promise<void>((res, rej) => ((ready = res), (failed = rej)));
    let stopped!: () => void;
    this.threadStopped = new Promise<void>((r) => (stopped = r));
    const onMsg = (m: ThreadMsg): void => {
      if (m.t === 'ev') this.dispatch(m.ev, m.fed);
      else if (m.t === 'ahead') this.ahead(m.ev, m.fed);
      else if (m.t === 'log') this.o.log[m.level](m.msg, m.fields);
      else if (m.t === 'ready') ready();
      else stopped();
    };
    port1.on('message', onMsg);
    thread.on('error', (err) => {
      this.o.log.error('recall event thread failed', { op: 'recall', err });
      failed(err);
    });
    thread.on('exit', (code) => {
      // Node may emit 'exit' before the messages the thread posted last (it does when this
      // thread was busy meanwhile): take them now, or stop() would close the port on
      // forwarded events nobody answers (test/recall/stop-order.test.ts).
      for (let m = receiveMessageOnPort(port1); m; m = receiveMessageOnPort(port1)) onMsg(m.message as ThreadMsg);
      stopped();
      if (this.stopping) return;
      const err = new Error(`recall event thread exited (code ${code}) while serving`);
      failed(err);
      this.o.log.error('recall event thread died: this worker ends, the supervisor answers what it left', { op: 'recall', code });
      (this.o.onThreadDeath ?? defaultThreadDeath)(err);
    });
    await started;
  }

  /** Stops reading; events already read are still answered before this resolves. */
  async stop(): Promise<void> {
    this.stopping = true;
    Atomics.store(this.ctl, 0, 1);
    if (this.threadStopped) await this.threadStopped;
    // Forwarded events arrive before 'stopped' (one port, in order).
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    await this.handler.idle();
    this.port?.close();
    this.port = null;
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
    const c = this.counters;
    return {
      ...this.s,
      events: this.s.events + c[C_EVENTS]!,
      allowed: this.s.allowed + c[C_ALLOWED]!,
      denied: this.s.denied + c[C_DENIED]!,
      readErrors: c[C_READ_ERRORS]!,
      fastAnswered: c[C_EVENTS]!,
      fastSpun: c[C_SPUN]!,
      cachedInodes: this.handler.cachedInodes,
      ignoreMarks: { ...this.marks.ignoreMarks(), without: this.marks.unignored },
      marksRemoved: this.s.marksRemoved + this.handler.marksRemoved + c[C_SILENCED]!,
    };
  }

  private dispatch(ev: FanEvent, fed?: Fed): void {
    if (ev.fd < 0) {
      if (ev.mask & FAN_Q_OVERFLOW) this.o.log.error('fanotify queue overflow', { op: 'read' });
      return;
    }
    this.s.events++;
    this.s.inFlight++;
    const p = this.serve(ev, fed).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /**
   * Read-ahead for a read the event thread answered: the handler runs for it as for an event
   * (the reader is gone: nothing to answer), holding the thread's dup of the event fd, and
   * closes it when its fetches end. Counted as no event.
   */
  private ahead(ev: FanEvent, fed: Fed): void {
    const ref = new FdRef(ev.fd);
    const p = this.handler
      .handle(ev, ref, (n) => (this.s.bytesFetched += n), this.aheadHook(ev, () => ''), fed)
      .then(
        () => {},
        (err: unknown) => this.o.log.debug('read-ahead failed', { op: 'recall', fd: ev.fd, err }),
      )
      .finally(() => {
        ref.release();
        this.pending.delete(p);
      });
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

  /** The recall log's row for read-ahead an event started (its bytes come after the answer). */
  private aheadHook(ev: FanEvent, commNow: () => string): AheadHook | undefined {
    const onRecall = this.o.onRecall;
    if (!onRecall) return undefined;
    return (bytes, ms, fd) =>
      onRecall({ time: Date.now() - ms, path: pathOfFd(fd), offset: 0, length: 0, bytes, whole: false, latencyMs: ms, pid: ev.pid, comm: commNow() || commOf(ev.pid), readahead: true });
  }

  private async serve(ev: FanEvent, fed?: Fed): Promise<void> {
    const t0 = Date.now();
    const ref = new FdRef(ev.fd);
    let response = FAN_DENY_EIO;
    let bytes = 0;
    let whole = false;
    let error: string | undefined;
    let path = '';
    let comm = '';
    try {
      const out = this.captured(ev) ? CAPTURED : await this.handler.handle(ev, ref, (n) => (this.s.bytesFetched += n), this.aheadHook(ev, () => comm), fed);
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
