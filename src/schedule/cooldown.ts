// Anti-thrash: a file recalled within the policy's `cooldown` is not released again, or a
// busy file would bounce between disk and tier on every run. Pure: the caller passes the
// set of recently recalled files (RecallLog.recalledSince) and applies this before
// planning, so watermark projections only count releases that will really happen.
import type { PolicyDecl, Rule } from '../dsl/ast.js';
import type { FileFacts } from '../engine/facts.js';

export interface RecentRecalls {
  paths: Set<string>;
  inodes: Set<string>; // `${dev}:${ino}`
}

/** True when this decision is a release of a file recalled within the cooldown. */
export function inCooldown(f: FileFacts, rule: Rule | null, recent: RecentRecalls | null): boolean {
  if (!recent || rule?.action.kind !== 'release') return false;
  if (f.state === 'released') return false; // nothing to hold back
  return recent.paths.has(f.absPath) || recent.inodes.has(`${f.dev}:${f.ino}`);
}

/** Splits decisions into those that may go to planning and those held back by the cooldown. */
export function applyCooldown<T extends { file: FileFacts; rule: Rule | null }>(
  policy: PolicyDecl,
  decisions: Iterable<T>,
  recent: RecentRecalls | null,
): { decisions: T[]; cooled: T[] } {
  const keep: T[] = [];
  const cooled: T[] = [];
  const on = policy.cooldownMs !== undefined && policy.cooldownMs > 0 ? recent : null;
  for (const d of decisions) (inCooldown(d.file, d.rule, on) ? cooled : keep).push(d);
  return { decisions: keep, cooled };
}

/** The `since` to ask the recall log for: now minus the policy's cooldown, or null if none. */
export function cooldownSince(policy: PolicyDecl, now: number): number | null {
  return policy.cooldownMs !== undefined && policy.cooldownMs > 0 ? now - policy.cooldownMs : null;
}

/**
 * The engine's `holdBack` hook for one run (ApplyDeps.holdBack): asks the recall log once
 * per policy for the files recalled within that policy's cooldown, then answers per file.
 */
export function cooldownHoldBack(
  recalledSince: (since: number) => RecentRecalls,
  now: number,
): (policy: PolicyDecl, file: FileFacts, rule: Rule | null) => boolean {
  const perPolicy = new Map<PolicyDecl, RecentRecalls | null>();
  return (policy, file, rule) => {
    if (rule?.action.kind !== 'release') return false;
    let recent = perPolicy.get(policy);
    if (recent === undefined) {
      const since = cooldownSince(policy, now);
      recent = since === null ? null : recalledSince(since);
      perPolicy.set(policy, recent);
    }
    return inCooldown(file, rule, recent);
  };
}
