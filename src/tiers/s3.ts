// S3 tier: placeholder until the implementation lands (same commit series).
import type { S3TierDecl } from '../dsl/ast.js';
import type { Tier } from './tier.js';

export const S3Tier = function (decl: S3TierDecl): Tier {
  throw new Error(`tier ${decl.name}: the S3 tier is not implemented yet`);
} as unknown as new (decl: S3TierDecl) => Tier;
