// Planning: pure over (file, deciding rule) pairs, filesystem usage and `now`.
// Turns decisions into actions, drops no-ops (idempotent runs do no new work),
// orders candidates, applies `limit` caps and usage watermarks. Every action keeps
// the rule that chose it.
import type { OrderKey, PolicyDecl, Rule, Span } from '../dsl/ast.js';
import { freedByRelease, usagePercent, type FileFacts, type FsUsage } from './facts.js';

export type ActionKind = 'archive' | 'release' | 'recall' | 'pin' | 'unpin';

export interface Reason {
  policy: string;
  rule: string;
  span: Span;
}

export interface PlannedAction {
  kind: ActionKind;
  /** Target tier for archive/release. */
  tier?: string;
  file: FileFacts;
  reason: Reason;
  /** Bytes this action frees locally (releases only). */
  freed: number;
}

/** Why a matched or unmatched file gets no action. */
export type SkipKind = 'unmatched' | 'keep' | 'noop' | 'pinned' | 'limit' | 'watermark' | 'nodata';

/** Why a release of a file with no allocated data is skipped (plan.noData). */
export function noDataMessage(f: Pick<FileFacts, 'size'>): string {
  return `holds no data: ${f.size} bytes claimed, no block allocated (st_blocks 0); releasing it would free nothing`;
}

export interface WatermarkState {
  dev: number;
  high: number;
  low: number;
  before: number; // percent
  projected: number; // percent after the planned releases
  triggered: boolean;
}

export interface Plan {
  policy: string;
  actions: PlannedAction[];
  skipped: Record<SkipKind, number>;
  watermarks: WatermarkState[];
  /** Releases skipped because the file holds no data (st_blocks 0): shown per file, never run. */
  noData: PlannedAction[];
}

/** The action a rule asks for on this file, or why there is none. */
export function classify(f: FileFacts, rule: Rule | null, policy: string): PlannedAction | SkipKind {
  if (!rule) return 'unmatched';
  const a = rule.action;
  const reason: Reason = { policy, rule: rule.name, span: rule.span };
  const copyTier = f.record?.copy?.tier;
  switch (a.kind) {
    case 'keep':
      return 'keep';
    case 'pin':
      return f.pinned ? 'noop' : { kind: 'pin', file: f, reason, freed: 0 };
    case 'unpin':
      return f.pinned ? { kind: 'unpin', file: f, reason, freed: 0 } : 'noop';
    case 'recall': {
      // Holes are the record's word: a released file written past its end derives 'dirty'.
      const holes = f.record?.state === 'released' || f.record?.state === 'partial';
      return holes ? { kind: 'recall', file: f, reason, freed: 0 } : 'noop';
    }
    case 'archive':
      // A copy elsewhere of a released file cannot be re-made without a recall: leave it.
      if (f.state === 'released' || f.state === 'partial') return 'noop';
      // Unless its ctime moved since the engine recorded it: then execute.ts hashes it
      // and uploads anew if the copy is stale (a same-size rewrite with mtime put back).
      if (f.state === 'archived' && copyTier === a.tier && !f.copyUnverified) return 'noop';
      return { kind: 'archive', tier: a.tier, file: f, reason, freed: 0 };
    case 'release':
      if (f.state === 'released') return 'noop';
      // partial: its copy is valid; only one on this tier can be reused (release-partial.ts).
      // A touched or written partial file (mtime differs from its copy) is left to the
      // recall service: the copy may no longer hold its local bytes.
      if (f.state === 'partial' && (copyTier !== a.tier || f.record?.copy?.mtimeNs !== f.mtimeNs)) return 'noop';
      if (f.pinned) return 'pinned';
      // A sparse claim with no data (20 GiB of nothing) frees nothing: nothing to move either.
      if (f.blocks === 0 && f.size > 0) return 'nodata';
      // resident/dirty upload first; archived and partial reuse their copy.
      return { kind: 'release', tier: a.tier, file: f, reason, freed: freedByRelease(f) };
  }
}

function orderValue(f: FileFacts, key: OrderKey): number {
  switch (key) {
    case 'last_access':
      return f.atimeMs;
    case 'last_mod':
      return f.mtimeMs;
    case 'last_change':
      return f.ctimeMs;
    case 'size':
      return f.size;
  }
}

/**
 * Orders by the timestamp (or size): `order by last_access asc` puts the least
 * recently accessed first. Watermark policies without `order by` release the least
 * recently accessed first. Ties break on path so plans are deterministic.
 */
export function orderActions(actions: PlannedAction[], policy: PolicyDecl): PlannedAction[] {
  const ob = policy.orderBy ?? (policy.watermark ? { key: 'last_access' as const, dir: 'asc' as const } : undefined);
  if (!ob) return actions;
  const sign = ob.dir === 'asc' ? 1 : -1;
  return actions.sort((x, y) => {
    const d = orderValue(x.file, ob.key) - orderValue(y.file, ob.key);
    if (d !== 0) return sign * d;
    return x.file.absPath < y.file.absPath ? -1 : x.file.absPath > y.file.absPath ? 1 : 0;
  });
}

export function emptySkipped(): Record<SkipKind, number> {
  return { unmatched: 0, keep: 0, noop: 0, pinned: 0, limit: 0, watermark: 0, nodata: 0 };
}

/**
 * Builds the plan. `usage` has one entry per filesystem (st_dev) the fileset touches;
 * without a watermark it is only reported.
 */
export function planPolicy(
  policy: PolicyDecl,
  decisions: Iterable<{ file: FileFacts; rule: Rule | null }>,
  usage: FsUsage[],
): Plan {
  const skipped = emptySkipped();
  const candidates: PlannedAction[] = [];
  const noData: PlannedAction[] = [];
  for (const { file, rule } of decisions) {
    const c = classify(file, rule, policy.name);
    if (c === 'nodata' && rule?.action.kind === 'release') {
      skipped.nodata++;
      noData.push({ kind: 'release', tier: rule.action.tier, file, reason: { policy: policy.name, rule: rule.name, span: rule.span }, freed: 0 });
    } else if (typeof c === 'string') skipped[c]++;
    else candidates.push(c);
  }
  orderActions(candidates, policy);

  const wm = policy.watermark;
  const byDev = new Map<number, WatermarkState & { used: number; avail: number }>();
  for (const u of usage) {
    const before = usagePercent(u);
    byDev.set(u.dev, {
      dev: u.dev,
      high: wm?.high ?? 100,
      low: wm?.low ?? 0,
      before,
      projected: before,
      triggered: wm ? before > wm.high : true,
      used: u.usedBytes,
      avail: u.availBytes,
    });
  }

  const actions: PlannedAction[] = [];
  let bytes = 0;
  for (const a of candidates) {
    const st = byDev.get(a.file.dev);
    if (wm && (!st || !st.triggered || st.projected < wm.low)) {
      skipped.watermark++;
      continue;
    }
    const moved = a.kind === 'archive' || a.kind === 'release' ? a.file.size : 0;
    if (
      (policy.limitFiles !== undefined && actions.length >= policy.limitFiles) ||
      (policy.limitBytes !== undefined && bytes + moved > policy.limitBytes)
    ) {
      skipped.limit++;
      continue;
    }
    actions.push(a);
    bytes += moved;
    if (st && a.freed > 0) {
      // Freed blocks leave `used` and become available again.
      st.used -= a.freed;
      st.avail += a.freed;
      st.projected = usagePercent({ usedBytes: st.used, availBytes: st.avail });
    }
  }
  const watermarks = [...byDev.values()].map(({ used: _u, avail: _a, ...w }) => w);
  return { policy: policy.name, actions, skipped, watermarks, noData };
}
