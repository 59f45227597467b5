// Per-tier rate limits (`bwlimit`, `tpslimit`): one token bucket for bytes and one for
// requests, shared by two classes of traffic.
//
// Invariants:
// - 'interactive' (recalls: a reader is blocked) and 'batch' (migration uploads and their
//   checks, gc) draw from the same budget; a waiting interactive request is always admitted
//   before any waiting batch one; within a class, first come first served.
// - Burst is one second of rate. A request larger than the bucket is admitted once the
//   bucket is full and leaves a debt (tokens below zero) that later requests wait out: any
//   size goes through and the long-run rate still holds.
// - While a limit is set, batch calls in flight are capped at max(1, concurrency - 1), so a
//   connection is left for recalls.
// Pure apart from the injected clock; no I/O.

export type LimitClass = 'interactive' | 'batch';
export const LIMIT_CLASSES: readonly LimitClass[] = ['interactive', 'batch'];

/** Same shape as the scheduler's clock (src/schedule/scheduler.ts), so one fake serves both. */
export interface LimiterClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemLimiterClock: LimiterClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface Limits {
  bytesPerSec?: number;
  requestsPerSec?: number;
  /** The tier's connection count (tuning.concurrency); the batch in-flight cap is one less. */
  concurrency?: number;
}

export interface Cost {
  bytes?: number;
  requests?: number;
}

/** Why a wait ended without admission: the caller's signal, or the limiter was closed. */
export class LimiterAborted extends Error {}

class Bucket {
  tokens: number;
  constructor(
    readonly rate: number,
    private last: number,
  ) {
    this.tokens = this.cap;
  }
  get cap(): number {
    return Math.max(1, this.rate); // burst: one second of rate
  }
  refill(now: number): void {
    this.tokens = Math.min(this.cap, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }
  /** Milliseconds until `n` may be taken (0: now); a request above the cap waits for a full bucket. */
  waitMs(n: number): number {
    const short = Math.min(n, this.cap) - this.tokens;
    return short <= this.cap * 1e-9 ? 0 : Math.ceil((short * 1000) / this.rate);
  }
}

interface Waiter {
  cls: LimitClass;
  cost: Cost;
  since: number;
  resolve(): void;
  reject(e: Error): void;
  unlisten(): void;
}

export class Limiter {
  private bytes: Bucket | null = null;
  private reqs: Bucket | null = null;
  private batchCap = Infinity;
  private readonly queues: Record<LimitClass, Waiter[]> = { interactive: [], batch: [] };
  private readonly waited: Record<LimitClass, number> = { interactive: 0, batch: 0 };
  private timer: unknown = null;
  private inFlight = 0;
  private slotWaiters: Waiter[] = [];
  private closed = false;

  constructor(
    limits: Limits,
    private readonly clock: LimiterClock = systemLimiterClock,
  ) {
    this.configure(limits);
  }

  /** (Re)sets the limits (SIGHUP). A bucket whose rate is unchanged keeps its tokens. */
  configure(l: Limits): void {
    const now = this.clock.now();
    const bucket = (old: Bucket | null, rate: number | undefined) =>
      rate === undefined || !(rate > 0) ? null : old && old.rate === rate ? old : new Bucket(rate, now);
    this.bytes = bucket(this.bytes, l.bytesPerSec);
    this.reqs = bucket(this.reqs, l.requestsPerSec);
    this.batchCap = this.limited ? Math.max(1, (l.concurrency ?? 1) - 1) : Infinity;
    this.pump();
    this.pumpSlots();
  }

  get limited(): boolean {
    return this.bytes !== null || this.reqs !== null;
  }

  /** The byte rate in force; undefined when bytes are not limited. */
  get bytesPerSec(): number | undefined {
    return this.bytes?.rate;
  }

  /** The request rate in force; undefined when requests are not limited. */
  get requestsPerSec(): number | undefined {
    return this.reqs?.rate;
  }

  /** Milliseconds requests of `cls` have spent waiting for tokens, waits in progress included (never decreases). */
  waitedMs(cls: LimitClass): number {
    const now = this.clock.now();
    return this.queues[cls].reduce((sum, w) => sum + (now - w.since), this.waited[cls]);
  }

  /** Resolves when `cost` may be spent; rejects with LimiterAborted on `signal` or close(). */
  acquire(cls: LimitClass, cost: Cost, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new LimiterAborted('tier closed'));
    if (signal?.aborted) return Promise.reject(new LimiterAborted('aborted'));
    if (!this.limited) return Promise.resolve();
    this.refill();
    if (this.queues.interactive.length === 0 && this.queues.batch.length === 0 && this.waitFor(cost) === 0) {
      this.take(cost);
      return Promise.resolve();
    }
    return this.enqueue(this.queues[cls], cls, cost, signal, () => this.pump());
  }

  /** A batch call's place among the calls in flight; call the returned function when it ends. */
  async batchSlot(signal?: AbortSignal): Promise<() => void> {
    if (this.inFlight >= this.batchCap || this.slotWaiters.length > 0) {
      await this.enqueue(this.slotWaiters, 'batch', {}, signal, () => this.pumpSlots());
    } else this.inFlight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.inFlight--;
      this.pumpSlots();
    };
  }

  /** Fails every wait (the tier is closing); later calls fail at once. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    const now = this.clock.now();
    for (const w of [...this.queues.interactive, ...this.queues.batch]) this.waited[w.cls] += now - w.since;
    for (const w of [...this.queues.interactive, ...this.queues.batch, ...this.slotWaiters]) {
      w.unlisten();
      w.reject(new LimiterAborted('tier closed'));
    }
    this.queues.interactive = [];
    this.queues.batch = [];
    this.slotWaiters = [];
  }

  private enqueue(q: Waiter[], cls: LimitClass, cost: Cost, signal: AbortSignal | undefined, kick: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = q.indexOf(w);
        if (i >= 0) q.splice(i, 1);
        if (q !== this.slotWaiters) this.waited[cls] += this.clock.now() - w.since;
        reject(new LimiterAborted('aborted'));
        kick(); // the head may have changed
      };
      const w: Waiter = { cls, cost, since: this.clock.now(), resolve, reject, unlisten: () => signal?.removeEventListener('abort', onAbort) };
      signal?.addEventListener('abort', onAbort, { once: true });
      q.push(w);
      kick();
    });
  }

  /** Admits waiters in priority order until the head one has to wait; arms a timer for it. */
  private pump(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    if (this.closed) return;
    this.refill();
    for (;;) {
      const q = this.queues.interactive.length > 0 ? this.queues.interactive : this.queues.batch;
      const w = q[0];
      if (!w) return;
      const ms = this.waitFor(w.cost);
      if (ms > 0) {
        this.timer = this.clock.setTimeout(() => {
          this.timer = null;
          this.pump();
        }, ms);
        return;
      }
      q.shift();
      this.take(w.cost);
      this.waited[w.cls] += this.clock.now() - w.since;
      w.unlisten();
      w.resolve();
    }
  }

  private pumpSlots(): void {
    while (this.slotWaiters.length > 0 && this.inFlight < this.batchCap) {
      const w = this.slotWaiters.shift()!;
      this.inFlight++;
      w.unlisten();
      w.resolve();
    }
  }

  private refill(): void {
    const now = this.clock.now();
    this.bytes?.refill(now);
    this.reqs?.refill(now);
  }

  private waitFor(c: Cost): number {
    return Math.max(c.bytes && this.bytes ? this.bytes.waitMs(c.bytes) : 0, c.requests && this.reqs ? this.reqs.waitMs(c.requests) : 0);
  }

  private take(c: Cost): void {
    if (this.bytes && c.bytes) this.bytes.tokens -= c.bytes;
    if (this.reqs && c.requests) this.reqs.tokens -= c.requests;
  }
}
