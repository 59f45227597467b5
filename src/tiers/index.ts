// Tier registry: one Tier per `tier` block of a policy.
import type { PolicyFile, TierDecl, TierTuning } from '../dsl/ast.js';
import { Limiter, type LimitClass, type LimiterClock, type Limits } from './limiter.js';
import { LocalTier } from './local.js';
import { S3Tier } from './s3.js';
import { HttpTier } from './http.js';
import { throttledViews, type TierViews } from './throttled.js';
import type { Tier } from './tier.js';

export function createTier(decl: TierDecl): Tier {
  switch (decl.kind) {
    case 'local':
      return new LocalTier(decl.name, decl.path, decl.tuning);
    case 's3':
      return new S3Tier(decl);
    case 'http':
      return new HttpTier(decl);
  }
}

/** The limiter settings a tier's tuning asks for (bwlimit, tpslimit; concurrency for the batch cap). */
export function limitsOf(t: TierTuning): Limits {
  return { bytesPerSec: t.bwlimit, requestsPerSec: t.tpslimit, concurrency: t.concurrency };
}

/** One tier with its limiter and both traffic classes over it (src/tiers/throttled.ts). */
export function createTierViews(decl: TierDecl, clock?: LimiterClock): TierViews {
  return throttledViews(createTier(decl), new Limiter(limitsOf(decl.tuning), clock));
}

/**
 * The policy's tiers as seen by one class of traffic. Tiers with `bwlimit`/`tpslimit` are
 * throttled; the default class is 'batch' (apply, archive and gc run from the CLI); the
 * daemon builds both views itself (src/daemon/policies.ts).
 */
export function createTiers(policy: PolicyFile, cls: LimitClass = 'batch'): Map<string, Tier> {
  const tiers = new Map<string, Tier>();
  for (const decl of policy.tiers) {
    const limited = decl.tuning.bwlimit !== undefined || decl.tuning.tpslimit !== undefined;
    tiers.set(decl.name, limited ? createTierViews(decl)[cls] : createTier(decl));
  }
  return tiers;
}

export { LocalTier } from './local.js';
export { S3Tier } from './s3.js';
export { HttpTier } from './http.js';
export { Limiter, type LimitClass } from './limiter.js';
export { ThrottledTier, type TierViews } from './throttled.js';
export * from './tier.js';
