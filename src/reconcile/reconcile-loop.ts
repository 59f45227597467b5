// The daemon's reconciliation passes: one soon after start (what changed while it was
// down), then every `intervalMs` (`tier daemon --reconcile-interval`, default 24 h; 0:
// none), one on request (requestReconcile: e.g. the change tracker lost events to a queue
// overflow), and `tier reconcile` over the control socket. Passes never overlap: each
// waits for the one before. Background passes hash archived files whose ctime moved, up
// to `hashMaxBytes` each (bigger ones are left to the release guard, which hashes anyway).
// Memory: a pass keeps 8 bytes per found inode (inode-set.ts) until it ends, and gives
// what its threads and batches freed back to the kernel when it does (malloc_trim).
import type { Logger } from '../log.js';
import { mallocTrim } from '../kernel/libc.js';
import type { Clock } from '../schedule/scheduler.js';
import { reconcile, type ReconcileDeps, type ReconcileOptions, type ReconcileResult } from './reconcile.js';

export const DEFAULT_RECONCILE_INTERVAL_MS = 24 * 3600_000;
export const DEFAULT_HASH_MAX_BYTES = 256 * 1024 * 1024;

export interface ReconcileLoopOptions {
  clock: Clock;
  log: Logger;
  intervalMs: number;
  hashMaxBytes: number;
  /** The fileset roots in force (they change on SIGHUP). */
  roots(): string[];
  deps(): ReconcileDeps;
  /** Background passes hash nothing while this says the engine is migrating (see ReconcileOptions.yieldTo). */
  engineBusy?: () => boolean;
  /** Every pass that ran (background or requested), with its result. */
  onResult?(r: ReconcileResult): void;
}

export class ReconcileLoop {
  private timer: unknown = null;
  private chain: Promise<unknown> = Promise.resolve();
  private queued = false;
  private stopped = false;
  private readonly ac = new AbortController();
  passes = 0;

  constructor(private readonly o: ReconcileLoopOptions) {}

  /** First pass right after start (a timer: after `ready`), then every intervalMs. */
  arm(): void {
    if (this.o.intervalMs <= 0 || this.stopped) return;
    this.schedule(0);
  }

  /** Queues one background pass (coalesced with one already queued and not started). */
  requestReconcile(reason = 'requested'): void {
    if (this.stopped || this.queued) return;
    this.queued = true;
    void this.background(reason);
  }

  /** One pass with these options, after any pass under way. */
  run(opts: Omit<ReconcileOptions, 'roots'> & { roots?: string[] }, signal?: AbortSignal, onStart?: () => void): Promise<ReconcileResult> {
    const sig = signal ? AbortSignal.any([signal, this.ac.signal]) : this.ac.signal;
    const p = this.chain.then(async () => {
      onStart?.();
      sig.throwIfAborted();
      try {
        return await reconcile({ ...opts, roots: opts.roots ?? this.o.roots(), signal: sig }, this.o.deps());
      } finally {
        // The pass's walk threads and batches freed their memory into malloc arenas that glibc
        // keeps: ~16 MB of the worker's RSS after a 100,000-file pass (bench/b9-memory.ts).
        try {
          mallocTrim();
        } catch {
          // A memory saving only: never the pass's result or error.
        }
      }
    });
    void p.then((r) => this.o.onResult?.(r), () => {});
    this.chain = p.catch(() => {});
    return p;
  }

  /** Resolves when no pass is running or queued. */
  async idle(): Promise<void> {
    for (let c = this.chain; ; c = this.chain) {
      await c;
      if (c === this.chain) return;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
    this.ac.abort(new Error('daemon stopping'));
    await this.idle();
  }

  private schedule(ms: number): void {
    // setTimeout takes at most 2^31-1 ms (~24.8 days); longer would fire at once.
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      this.requestReconcile(this.passes === 0 ? 'start' : 'interval');
      this.schedule(this.o.intervalMs);
    }, Math.min(ms, 2 ** 31 - 1));
  }

  private async background(reason: string): Promise<void> {
    const t0 = this.o.clock.now();
    try {
      // Unqueued when it starts: a request during a pass gets a pass of its own after it.
      const opts = { dryRun: false, hash: true, hashMaxBytes: this.o.hashMaxBytes, ...(this.o.engineBusy ? { yieldTo: this.o.engineBusy } : {}) };
      const r = await this.run(opts, undefined, () => (this.queued = false));
      this.passes++;
      this.o.log.info('reconcile pass done', {
        op: 'reconcile',
        reason,
        ms: this.o.clock.now() - t0,
        checked: r.checked,
        dirtyBySizeMtime: r.dirty.bySizeMtime,
        dirtyByHash: r.dirty.byHash,
        hashedFiles: r.hashed.files,
        hashedBytes: r.hashed.bytes,
        unverified: r.unverified,
        rows: r.rows,
        scanErrors: r.scanErrors.length,
      });
    } catch (e) {
      if (!this.stopped) this.o.log.error('reconcile pass failed', { op: 'reconcile', reason, err: e });
    }
  }
}
