// Tier registry: one Tier per `tier` block of a policy.
import type { PolicyFile, TierDecl } from '../dsl/ast.js';
import { LocalTier } from './local.js';
import { S3Tier } from './s3.js';
import type { Tier } from './tier.js';

export function createTier(decl: TierDecl): Tier {
  switch (decl.kind) {
    case 'local':
      return new LocalTier(decl.name, decl.path, decl.tuning);
    case 's3':
      return new S3Tier(decl);
  }
}

export function createTiers(policy: PolicyFile): Map<string, Tier> {
  const tiers = new Map<string, Tier>();
  for (const decl of policy.tiers) tiers.set(decl.name, createTier(decl));
  return tiers;
}

export { LocalTier } from './local.js';
export { S3Tier } from './s3.js';
export * from './tier.js';
