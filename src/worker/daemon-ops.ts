// Everything operational the daemon worker runs beside the recall service: the scheduler
// (cron + watermark triggers), the recall log, the metrics registry and its optional
// loopback listener. The worker creates one DaemonOps, feeds recall outcomes to
// onRecall, passes policy runs in through `runPolicy`, and serves metricsText().
import type Database from 'better-sqlite3';
import { openSqlite } from '../record/sqlite.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { PolicyFile } from '../dsl/ast.js';
import { cooldownHoldBack } from '../schedule/cooldown.js';
import type { Logger } from '../log.js';
import { Scheduler, entriesFromPolicy, type Clock, type ScheduleEntry, type Trigger } from '../schedule/scheduler.js';
import type { Usage } from '../schedule/usage.js';
import { createTierMetrics, observeRecall, setStateTotals, setTierTotals, type TierMetrics } from '../metrics/tier-metrics.js';
import { openRecallLog, type RecallLog } from '../reports/recall-log.js';
import { listenMetrics, parseListen } from '../metrics/metrics-http.js';
import type { Counter } from '../metrics/metrics.js';
import { systemClock } from '../schedule/scheduler.js';
import { GcLoop } from '../gc/gc-loop.js';
import type { Tier } from '../tiers/tier.js';
import type { Catalog } from '../engine/catalog.js';
import { ChangeTracker, type DirtyFile } from '../changes/change-tracker.js';
import { trackAlive, trackDeleted, trackDirty, trackRenamed } from '../changes/track-catalog.js';
import { DEFAULT_HASH_MAX_BYTES, DEFAULT_RECONCILE_INTERVAL_MS, ReconcileLoop } from '../reconcile/reconcile-loop.js';
import type { ReconcileResult } from '../reconcile/reconcile.js';

/** What the recall service reports per recall event (src/recall/service.ts RecallLogRecord). */
export interface RecallEvent {
  time: number;
  path: string;
  bytes: number;
  latencyMs: number;
  pid: number;
  comm: string;
  error?: string;
  dev?: number;
  ino?: number;
  /** Bytes a reader's read-ahead fetched after its event was answered: bytes, not a recall. */
  readahead?: boolean;
}

export interface DaemonOpsOptions {
  stateDir: string;
  policies: PolicyFile[];
  log: Logger;
  /** Runs one policy of one file (the same path as a `tier apply` sent to the daemon). */
  runPolicy(policyFile: string, policy: string, trigger: Trigger): Promise<unknown>;
  /** "PORT" or "HOST:PORT", loopback only; absent: metrics only on the control socket. */
  metricsListen?: string;
  /** Also prom-client's process_* / nodejs_* metrics (the daemon: yes; unit tests: no, they change between renders). */
  processMetrics?: boolean;
  queueDepth?: () => Record<string, number>;
  /** Seconds waited for each tier's rate limits, by class, since start (src/daemon/tier-views.ts). */
  throttleWaits?: () => { tier: string; cls: string; seconds: number }[];
  /** The daemon's open tiers: when given, orphan objects are collected on a timer per policy file. */
  gcTiers?: Map<string, Tier>;
  /** When given, writes to archived files under the fileset roots mark their rows dirty at once. */
  catalog?: Catalog;
  /** Change tracking lost events (queue overflow): e.g. start a reconcile scan. */
  onTrackOverflow?: () => void;
  clock?: Clock;
  usage?: (root: string) => Promise<Usage>;
  /** Reconciliation passes (with `catalog`): every this many ms after one at start; 0: none. Default 24 h. */
  reconcileIntervalMs?: number;
  /** Background passes hash archived files up to this size. Default 256 MiB. */
  reconcileHashMaxBytes?: number;
  /** Marks a released file a reconcile found where the catalog did not list it (the recall service). */
  markFound?(absPath: string, expect?: { dev: number; ino: number }): Promise<void>;
}

const STATE_TOTALS_TTL_MS = 10_000;

export class DaemonOps {
  readonly metrics: TierMetrics;
  /** Last totals added to counters fed from elsewhere (collect). */
  private readonly counted = new Map<string, number>();
  readonly recallLog: RecallLog;
  readonly scheduler: Scheduler;
  private targets = new Map<string, { file: string; policy: string }>();
  private listener: { port: number; close(): Promise<void> } | null = null;
  private catalogRead: Database.Database | null = null;
  private totalsAt = 0;
  private gc: GcLoop | null = null;
  private stopped = false;
  private tracker: ChangeTracker | null = null;
  /** The roots the running tracker watches (sorted, JSON), to keep it across reloads. */
  private trackedRoots: string | null = null;
  private policies: PolicyFile[];
  /** Reconciliation passes (null without a catalog). */
  readonly reconciler: ReconcileLoop | null = null;

  constructor(private readonly o: DaemonOpsOptions) {
    this.metrics = createTierMetrics();
    if (o.processMetrics) this.metrics.registry.processMetrics();
    this.recallLog = openRecallLog(o.stateDir);
    this.scheduler = new Scheduler({
      clock: o.clock,
      usage: o.usage,
      logger: o.log,
      run: (key, trigger) => this.run(key, trigger),
    });
    this.metrics.registry.onCollect(() => this.collect());
    this.policies = o.policies;
    const catalog = o.catalog;
    if (catalog) {
      this.reconciler = new ReconcileLoop({
        clock: o.clock ?? systemClock,
        log: o.log,
        intervalMs: o.reconcileIntervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS,
        hashMaxBytes: o.reconcileHashMaxBytes ?? DEFAULT_HASH_MAX_BYTES,
        roots: () => [...new Set(this.policies.flatMap((pf) => pf.filesets.flatMap((f) => f.roots)))],
        deps: () => ({ catalog, log: o.log, ...(o.markFound ? { onReleasedFound: o.markFound } : {}) }),
        // Control requests (apply, manual actions) and scheduled runs migrate files.
        engineBusy: () => (o.queueDepth?.().control ?? 0) > 0 || this.scheduler.status().some((s) => s.running),
        // Found by whichever sees it first: the tracker skips a row already dirty.
        onResult: (r) => {
          if (!r.dryRun) this.metrics.dirtied.inc({}, r.dirty.bySizeMtime + r.dirty.byHash);
        },
      });
    }
    if (o.gcTiers) {
      this.gc = new GcLoop({
        stateDir: o.stateDir,
        tiers: o.gcTiers,
        clock: o.clock ?? systemClock,
        log: o.log,
        onResult: (r) => {
          for (const t of r.tiers) for (const x of t.orphans) if (x.fate === 'deleted') this.metrics.gcDeleted.inc({ tier: t.tier });
        },
      });
    }
  }

  /** Installs the schedules and opens the metrics listener (if configured). */
  async start(): Promise<void> {
    this.reload(this.o.policies);
    this.reconciler?.arm();
    if (this.o.metricsListen) {
      const addr = parseListen(this.o.metricsListen);
      if (typeof addr === 'string') throw new Error(addr);
      this.listener = await listenMetrics(addr, () => this.metricsText());
      this.o.log.info('metrics listening', { op: 'metrics', address: `${addr.host}:${this.listener.port}` });
    }
  }

  get metricsPort(): number | null {
    return this.listener?.port ?? null;
  }

  /** New policy set (start-up; SIGHUP via src/worker/reload.ts): schedules, gc and tracking replaced, runs in flight finish. */
  reload(policies: PolicyFile[]): void {
    this.policies = policies;
    const entries: ScheduleEntry[] = [];
    const targets = new Map<string, { file: string; policy: string }>();
    const names = policies.flatMap((pf) => pf.policies.map((p) => p.name));
    for (const pf of policies) {
      for (const e of entriesFromPolicy(pf)) {
        // Policy names need only be unique within a file; qualify a clash with its file.
        const key = names.filter((n) => n === e.policy).length > 1 ? `${pf.file}:${e.policy}` : e.policy;
        targets.set(key, { file: pf.file, policy: e.policy });
        entries.push({ ...e, policy: key });
      }
    }
    this.targets = targets;
    this.scheduler.update(entries);
    this.gc?.arm(policies);
    this.trackChanges(policies);
    this.o.log.info('schedules installed', { op: 'schedule', policies: entries.map((e) => e.policy) });
  }

  /** The recall service's hook: one row in the recall log, counters and latency. */
  onRecall = (r: RecallEvent): void => {
    try {
      this.recallLog.record({ time: r.time, path: r.path, dev: r.dev, ino: r.ino, bytes: r.bytes, latencyMs: r.latencyMs, comm: r.comm, pid: r.pid, error: r.error });
    } catch (e) {
      this.o.log.warn('recall log write failed', { op: 'recall-log', path: r.path, err: e });
    }
    if (r.readahead) this.metrics.recallBytes.inc({}, r.bytes);
    else observeRecall(this.metrics, { bytes: r.bytes, seconds: r.latencyMs / 1000, errorKind: r.error === undefined ? undefined : errorKind(r.error) });
  };

  /** A row changed outside a policy run (a recall made a file whole): state gauges are re-read at the next scrape, not after their TTL. */
  catalogChanged(): void {
    this.totalsAt = 0;
  }

  /** ApplyDeps.holdBack for one run at `now`: releases of files recalled within the policy's cooldown. */
  holdBack(now: number): ReturnType<typeof cooldownHoldBack> {
    return cooldownHoldBack((since) => this.recallLog.recalledSince(since), now);
  }

  /** One per-file migration outcome (archive/release/recall; done/skipped/busy/failed). */
  observeMigration(action: string, outcome: string): void {
    this.metrics.migrations.inc({ action, outcome });
  }

  observeTierError(tier: string): void {
    this.metrics.tierRequestErrors.inc({ tier });
  }

  /**
   * Queues one background reconciliation pass (coalesced). The hook for whatever knows
   * events were missed, e.g. the change tracker's queue overflow.
   */
  requestReconcile(reason = 'requested'): void {
    this.reconciler?.requestReconcile(reason);
  }

  /** `tier reconcile` over the control socket: one pass after any under way. */
  reconcile(req: { roots?: string[]; dryRun: boolean; hash: boolean }, signal?: AbortSignal): Promise<ReconcileResult> {
    if (!this.reconciler) throw new Error('reconcile: the daemon has no catalog');
    return this.reconciler.run(req, signal);
  }

  /** Resolves when no garbage collection is running (tests, shutdown). */
  async gcIdle(): Promise<void> {
    await this.gc?.idle();
  }

  metricsText(): Promise<string> {
    return this.metrics.registry.render();
  }

  /** Ends the reconcile pass before a stop detaches the roots: a pass that walked an
   *  emptied root would take every file under it for deleted. */
  async stopReconcile(): Promise<void> {
    await this.reconciler?.stop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.reconciler?.stop();
    await this.gc?.stop();
    this.tracker?.stop();
    this.tracker = null;
    await this.scheduler.stop();
    await this.listener?.close();
    this.listener = null;
    this.recallLog.close();
    this.catalogRead?.close();
    this.catalogRead = null;
  }

  private async run(key: string, trigger: Trigger): Promise<void> {
    const t = this.targets.get(key);
    if (!t) throw new Error(`no policy ${key} is loaded`);
    try {
      await this.o.runPolicy(t.file, t.policy, trigger);
      this.metrics.policyRuns.inc({ policy: key, trigger: trigger.kind, outcome: 'ok' });
    } catch (e) {
      this.metrics.policyRuns.inc({ policy: key, trigger: trigger.kind, outcome: 'failed' });
      throw e;
    }
  }

  /**
   * (Re)starts change tracking on the roots of every fileset. A reload with the same roots
   * keeps the running tracker: a new group would lose the events queued in the old one
   * (and those debounced). When the roots change, the events between the two groups are
   * lost: a reconcile pass catches up once the new group is watching.
   */
  private trackChanges(policies: PolicyFile[]): void {
    const catalog = this.o.catalog;
    const roots = [...new Set(policies.flatMap((pf) => pf.filesets.flatMap((f) => f.roots)))].sort();
    const rootsKey = JSON.stringify(roots);
    if (this.tracker && rootsKey === this.trackedRoots && !this.stopped) return;
    const replaced = this.tracker !== null;
    this.tracker?.stop();
    this.tracker = null;
    this.trackedRoots = null;
    if (!catalog || this.stopped) return;
    if (roots.length === 0) return;
    const tracker = new ChangeTracker({
      roots,
      log: this.o.log,
      onDirty: (f) => this.markDirty(catalog, f),
      onDeleted: (d) => this.catalogStep('delete', d.path ?? undefined, () => trackDeleted(catalog, d, Date.now(), this.o.log)),
      onRenamed: (r) => this.catalogStep('rename', r.to, () => trackRenamed(catalog, r, Date.now(), this.o.log)),
      onAlive: (f) => this.catalogStep('relink', f.path, () => void trackAlive(catalog, f, this.o.log)),
      onOverflow: () => {
        this.o.onTrackOverflow?.();
        this.requestReconcile('change tracking queue overflow');
      },
    });
    try {
      tracker.start();
      this.tracker = tracker;
      this.trackedRoots = rootsKey;
      if (replaced) this.requestReconcile('tracker restarted');
    } catch (e) {
      tracker.stop();
      this.o.log.warn('change tracking unavailable; periodic scans reconcile', { op: 'fanotify_init', err: e });
    }
  }

  private catalogStep(op: string, path: string | undefined, step: () => void): void {
    try {
      step();
    } catch (e) {
      this.o.log.warn('catalog update failed', { op, path, err: e });
    }
  }

  private markDirty(catalog: Catalog, f: DirtyFile): void {
    this.catalogStep('track', f.path, () => {
      if (trackDirty(catalog, f, Date.now(), this.o.log)) this.metrics.dirtied.inc();
    });
  }

  private collect(): void {
    const q = this.o.queueDepth?.() ?? {};
    for (const [queue, n] of Object.entries(q)) this.metrics.queueDepth.set({ queue }, n);
    // Totals kept elsewhere, added as they grow (a counter never goes back).
    const grow = (c: Counter, name: string, labels: Record<string, string>, total: number) => {
      const k = JSON.stringify([name, labels]);
      const have = this.counted.get(k) ?? 0;
      if (total > have) c.inc(labels, total - have);
      this.counted.set(k, Math.max(have, total));
    };
    for (const w of this.o.throttleWaits?.() ?? []) grow(this.metrics.throttleWait, 'throttleWait', { tier: w.tier, class: w.cls }, w.seconds);
    for (const s of this.scheduler.status()) grow(this.metrics.runsSkipped, 'runsSkipped', { policy: s.policy }, s.skipped);
    const now = Date.now();
    if (now - this.totalsAt < STATE_TOTALS_TTL_MS) return;
    this.totalsAt = now;
    try {
      setStateTotals(this.metrics, this.stateTotals());
      setTierTotals(this.metrics, this.tierTotals());
    } catch (e) {
      this.o.log.warn('metrics: catalog totals unavailable', { op: 'metrics', err: e });
    }
  }

  private catalogDb(): Database.Database | null {
    if (!this.catalogRead) {
      const file = join(this.o.stateDir, 'catalog.db');
      if (!existsSync(file)) return null;
      this.catalogRead = openSqlite(file, { readonly: true, fileMustExist: true });
      this.catalogRead.pragma('busy_timeout = 2000');
    }
    return this.catalogRead;
  }

  /** Files and bytes per (tier, state) of files with a copy: `tier report`'s per-tier figures. */
  private tierTotals(): { tier: string; state: string; files: number; bytes: number }[] {
    const db = this.catalogDb();
    if (!db) return [];
    return db
      .prepare('SELECT tier, state, COUNT(*) AS files, COALESCE(SUM(size), 0) AS bytes FROM files WHERE deleted_at IS NULL AND tier IS NOT NULL GROUP BY tier, state')
      .all() as { tier: string; state: string; files: number; bytes: number }[];
  }

  /** Files and bytes per state, straight from the catalog's `files` table (read-only). */
  private stateTotals(): { state: string; files: number; bytes: number }[] {
    const db = this.catalogDb();
    if (!db) return [];
    return db.prepare('SELECT state, COUNT(*) AS files, COALESCE(SUM(size), 0) AS bytes FROM files WHERE deleted_at IS NULL GROUP BY state').all() as {
      state: string;
      files: number;
      bytes: number;
    }[];
  }
}

/** A short, bounded label for an error: the TierError code or errno, never a free-form message. */
export function errorKind(message: string): string {
  const m = /\b(NotFound|AccessDenied|ShortObject|Corrupt|Timeout|Aborted|Unavailable|Throttled|Io|InvalidKey)\b/.exec(message) ?? /\b(E[A-Z]{2,})\b/.exec(message);
  return m?.[1] ?? 'other';
}
