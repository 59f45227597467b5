// Runs each policy at its cron times and when its filesystem crosses the high watermark.
// Invariants:
// - runs of one policy never overlap: a trigger that arrives while the policy's previous
//   run is still going is skipped and logged (cron and watermark triggers alike);
// - a cron timer that fires early (timers and the wall clock drift apart) is re-armed for
//   the remainder; the next time is computed from max(now, due), so a slot never fires twice
//   and slots missed while the machine slept are skipped, not replayed;
// - the clock, timers and usage probe are injected so tests can drive time by hand.
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { PolicyFile } from '../dsl/ast.js';
import { nextRun, type CronSpec } from './cron.js';
import { fsUsage, maxUsage, type Usage } from './usage.js';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export const DEFAULT_CHECK_INTERVAL_MS = 5 * 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit; longer waits are re-armed

export interface ScheduleEntry {
  policy: string;
  schedule?: CronSpec;
  watermark?: { high: number; low: number };
  checkIntervalMs: number;
  roots: string[];
}

export type Trigger =
  | { kind: 'schedule'; due: number }
  | { kind: 'watermark'; root: string; percent: number; high: number; low: number }
  | { kind: 'manual' };

export interface PolicyRunStatus {
  policy: string;
  running: boolean;
  nextRunAt: number | null;
  runs: number;
  skipped: number;
  last?: { trigger: Trigger['kind']; startedAt: number; endedAt?: number; outcome?: 'ok' | 'failed'; error?: string };
}

export interface SchedulerOptions {
  run(policy: string, trigger: Trigger): Promise<unknown>;
  clock?: Clock;
  usage?: (root: string) => Promise<Usage>;
  logger?: Logger;
}

interface Slot {
  entry: ScheduleEntry;
  cronTimer?: unknown;
  due?: number;
  wmTimer?: unknown;
  status: PolicyRunStatus;
}

/** The schedule entries of a checked policy file (fileset roots resolved). */
export function entriesFromPolicy(pf: PolicyFile): ScheduleEntry[] {
  return pf.policies
    .filter((p) => p.schedule || p.watermark)
    .map((p) => ({
      policy: p.name,
      schedule: p.schedule ? { cron: p.schedule.cron, tz: p.timezone } : undefined,
      watermark: p.watermark ? { high: p.watermark.high, low: p.watermark.low } : undefined,
      checkIntervalMs: p.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS,
      roots: pf.filesets.find((f) => f.name === p.fileset)?.roots ?? [],
    }));
}

export class Scheduler {
  private readonly clock: Clock;
  private readonly usage: (root: string) => Promise<Usage>;
  private readonly log: Logger;
  private readonly slots = new Map<string, Slot>();
  private readonly inflight = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(private readonly opts: SchedulerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.usage = opts.usage ?? fsUsage;
    this.log = opts.logger ?? silentLogger;
  }

  /** Installs `entries`, replacing any previous set (SIGHUP). Runs in flight keep going. */
  update(entries: ScheduleEntry[]): void {
    const old = this.slots;
    for (const slot of old.values()) this.disarm(slot);
    const prev = new Map(old);
    old.clear();
    this.stopped = false;
    for (const entry of entries) {
      const p = prev.get(entry.policy)?.status;
      const status: PolicyRunStatus = p
        ? { ...p, nextRunAt: null }
        : { policy: entry.policy, running: false, nextRunAt: null, runs: 0, skipped: 0 };
      const slot: Slot = { entry, status };
      this.slots.set(entry.policy, slot);
      if (entry.schedule) this.armCron(slot, this.clock.now());
      if (entry.watermark) this.armWatermark(slot);
    }
  }

  /** Clears every timer and waits for runs in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const slot of this.slots.values()) this.disarm(slot);
    await Promise.allSettled([...this.inflight.values()]);
  }

  status(): PolicyRunStatus[] {
    return [...this.slots.values()].map((s) => ({ ...s.status }));
  }

  /** Starts a run unless one of the same policy is going. Resolves when that run ends. */
  trigger(policy: string, trigger: Trigger): { started: boolean; done: Promise<void> } {
    const going = this.inflight.get(policy);
    if (going) {
      const slot = this.slots.get(policy);
      if (slot) slot.status.skipped++;
      this.log.warn('run skipped: previous run of this policy is still going', { policy, trigger: trigger.kind });
      return { started: false, done: going };
    }
    const status = this.slots.get(policy)?.status;
    const startedAt = this.clock.now();
    if (status) {
      status.running = true;
      status.runs++;
      status.last = { trigger: trigger.kind, startedAt };
    }
    this.log.info('policy run starting', { policy, trigger: trigger.kind });
    const done = (async () => {
      try {
        await this.opts.run(policy, trigger);
        if (status?.last) status.last.outcome = 'ok';
        this.log.info('policy run finished', { policy, trigger: trigger.kind });
      } catch (e) {
        if (status?.last) {
          status.last.outcome = 'failed';
          status.last.error = (e as Error).message;
        }
        this.log.error('policy run failed', { policy, trigger: trigger.kind, err: e });
      } finally {
        if (status) {
          status.running = false;
          if (status.last) status.last.endedAt = this.clock.now();
        }
        this.inflight.delete(policy);
      }
    })();
    this.inflight.set(policy, done);
    return { started: true, done };
  }

  private armCron(slot: Slot, after: number): void {
    const spec = slot.entry.schedule;
    if (!spec || this.stopped) return;
    let due: number;
    try {
      due = nextRun(spec, after);
    } catch (e) {
      this.log.error('schedule not usable; policy will not run on a schedule', { policy: slot.entry.policy, err: e });
      return;
    }
    slot.due = due;
    slot.status.nextRunAt = due;
    this.waitUntil(slot, due);
  }

  private waitUntil(slot: Slot, due: number): void {
    const delay = Math.min(Math.max(0, due - this.clock.now()), MAX_TIMER_MS);
    slot.cronTimer = this.clock.setTimeout(() => this.onCron(slot, due), delay);
  }

  private onCron(slot: Slot, due: number): void {
    if (this.stopped || this.slots.get(slot.entry.policy) !== slot) return;
    const now = this.clock.now();
    if (now < due) return this.waitUntil(slot, due); // early or a long wait re-armed
    this.trigger(slot.entry.policy, { kind: 'schedule', due });
    this.armCron(slot, Math.max(now, due));
  }

  private armWatermark(slot: Slot): void {
    if (this.stopped) return;
    const every = Math.max(1, slot.entry.checkIntervalMs);
    slot.wmTimer = this.clock.setTimeout(() => {
      void this.checkWatermark(slot).finally(() => {
        if (this.slots.get(slot.entry.policy) === slot) this.armWatermark(slot);
      });
    }, every);
  }

  /** One watermark poll: runs the policy when its fullest root is above `high`. */
  private async checkWatermark(slot: Slot): Promise<void> {
    const wm = slot.entry.watermark;
    if (!wm || this.stopped) return;
    let found;
    try {
      found = await maxUsage(slot.entry.roots, this.usage);
    } catch (e) {
      this.log.warn('watermark check failed', { policy: slot.entry.policy, err: e });
      return;
    }
    if (!found || found.usage.percent <= wm.high) return;
    this.log.info('high watermark crossed', { policy: slot.entry.policy, path: found.root, usage: found.usage.percent, high: wm.high });
    this.trigger(slot.entry.policy, { kind: 'watermark', root: found.root, percent: found.usage.percent, high: wm.high, low: wm.low });
  }

  private disarm(slot: Slot): void {
    if (slot.cronTimer !== undefined) this.clock.clearTimeout(slot.cronTimer);
    if (slot.wmTimer !== undefined) this.clock.clearTimeout(slot.wmTimer);
    slot.cronTimer = slot.wmTimer = undefined;
    slot.status.nextRunAt = null;
  }
}
