// The daemon's tiers: each opened once and seen through its rate limiter (bwlimit,
// tpslimit) as two classes of traffic. The recall service gets the interactive views, the
// engine and gc the batch views, so a reader waiting on a recall is served before the
// next piece of a migration. Tiers without limits pass straight through.
import type { TierDecl } from '../dsl/ast.js';
import { createTierViews, limitsOf } from '../tiers/index.js';
import { LIMIT_CLASSES, type LimitClass, type Limiter } from '../tiers/limiter.js';
import type { Tier } from '../tiers/tier.js';

export interface ThrottleWait {
  tier: string;
  cls: LimitClass;
  seconds: number;
}

export class DaemonTiers {
  /** The recall service's registry (shared Map: tiers added on SIGHUP appear in it). */
  readonly interactive = new Map<string, Tier>();
  /** Policy runs, manual archive/release and gc. */
  readonly batch = new Map<string, Tier>();
  private readonly limiters = new Map<string, Limiter>();

  add(decl: TierDecl): void {
    const v = createTierViews(decl);
    this.interactive.set(decl.name, v.interactive);
    this.batch.set(decl.name, v.batch);
    this.limiters.set(decl.name, v.limiter);
  }

  /** SIGHUP: new limits for tiers already open (the first declaration of each name wins, as at start). */
  retune(decls: TierDecl[]): void {
    const seen = new Set<string>();
    for (const d of decls) {
      if (seen.has(d.name)) continue;
      seen.add(d.name);
      this.limiters.get(d.name)?.configure(limitsOf(d.tuning));
    }
  }

  /** Seconds each class has waited for each tier's limits, since start. */
  throttleWaits(): ThrottleWait[] {
    return [...this.limiters].flatMap(([tier, l]) => LIMIT_CLASSES.map((cls) => ({ tier, cls, seconds: l.waitedMs(cls) / 1000 })));
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.batch.values()].map((t) => t.close()));
  }
}
