// S3 tier: placeholder until the implementation lands (same commit series).
import type { S3TierDecl } from '../dsl/ast.js';
import type { Tier } from './tier.js';

export class S3Tier {
  constructor(decl: S3TierDecl) {
    throw new Error(`tier ${decl.name}: the S3 tier is not implemented yet`);
  }
}
export type _S3 = Tier;
