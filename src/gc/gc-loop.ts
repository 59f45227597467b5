// The daemon's own garbage collection: one timer per policy file, every gcIntervalMs
// (half its shortest keep_deleted, 1 s to 1 day), with the daemon's open tiers.
// Collections never overlap: a tick that finds one running waits for the next.
import type { PolicyFile } from '../dsl/ast.js';
import type { Logger } from '../log.js';
import type { Tier } from '../tiers/tier.js';
import type { Clock } from '../schedule/scheduler.js';
import { gcIntervalMs, gcWithPolicy } from './gc-policy.js';
import type { GcResult } from './gc.js';

export class GcLoop {
  private timers: unknown[] = [];
  private running: Promise<unknown> | null = null;
  private stopped = false;

  constructor(
    private readonly o: { stateDir: string; tiers: Map<string, Tier>; clock: Clock; log: Logger; onResult(r: GcResult): void },
  ) {}

  arm(policies: PolicyFile[]): void {
    this.clear();
    if (this.stopped) return;
    policies.forEach((pf, i) => {
      const every = gcIntervalMs(pf);
      const tick = () => {
        if (this.stopped) return;
        if (!this.running) this.running = this.collect(pf).finally(() => (this.running = null));
        this.timers[i] = this.o.clock.setTimeout(tick, every);
      };
      this.timers[i] = this.o.clock.setTimeout(tick, every);
    });
  }

  /** Resolves when no collection is running. */
  async idle(): Promise<void> {
    await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.clear();
    await this.running;
  }

  private async collect(pf: PolicyFile): Promise<void> {
    try {
      const r = await gcWithPolicy(pf, { config: pf.file, stateDir: this.o.stateDir, log: this.o.log, now: this.o.clock.now() }, this.o.tiers);
      this.o.onResult(r);
      if (r.deleted > 0) this.o.log.info('gc: orphan objects deleted', { op: 'gc', policyFile: pf.file, deleted: r.deleted, bytes: r.deletedBytes });
    } catch (e) {
      this.o.log.error('gc failed', { op: 'gc', policyFile: pf.file, err: e });
    }
  }

  private clear(): void {
    for (const t of this.timers) this.o.clock.clearTimeout(t);
    this.timers = [];
  }
}
