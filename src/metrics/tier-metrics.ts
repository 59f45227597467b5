// The metric names `tier` exposes. Call sites (recall handler, executor, tiers) get this
// one object; the daemon renders its registry on GET /metrics.
import { Registry, type Counter, type Gauge, type Histogram } from './metrics.js';
import type { FileState } from '../dsl/ast.js';

/** Recall latency spans a page-cache-warm local tier (ms) to a cold S3 object (tens of s). */
export const RECALL_LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const FILE_STATES: readonly FileState[] = ['resident', 'archived', 'dirty', 'released', 'partial'];

export interface TierMetrics {
  registry: Registry;
  recalls: Counter; // tier_recalls_total
  recallBytes: Counter; // tier_recall_bytes_total
  recallLatency: Histogram; // tier_recall_latency_seconds
  recallErrors: Counter; // tier_recall_errors_total{kind}
  migrations: Counter; // tier_migrations_total{action,outcome}
  bytes: Gauge; // tier_bytes{state}
  files: Gauge; // tier_files{state}
  tierBytes: Gauge; // tier_tier_bytes{tier,state}
  tierFiles: Gauge; // tier_tier_files{tier,state}
  queueDepth: Gauge; // tier_queue_depth{queue}
  tierRequestErrors: Counter; // tier_tier_request_errors_total{tier}
  policyRuns: Counter; // tier_policy_runs_total{policy,trigger,outcome}
  runsSkipped: Counter; // tier_policy_runs_skipped_total{policy}
  gcDeleted: Counter; // tier_gc_objects_deleted_total{tier}
  dirtied: Counter; // tier_files_dirtied_total
  throttleWait: Counter; // tier_throttle_wait_seconds_total{tier,class}
}

export function createTierMetrics(registry = new Registry()): TierMetrics {
  return {
    registry,
    recalls: registry.counter('tier_recalls_total', 'Recalls answered (one per file access that needed tier data).'),
    recallBytes: registry.counter('tier_recall_bytes_total', 'Bytes fetched from tiers by recalls.'),
    recallLatency: registry.histogram('tier_recall_latency_seconds', 'Time from a pre-content event to its answer.', [], RECALL_LATENCY_BUCKETS),
    recallErrors: registry.counter('tier_recall_errors_total', 'Recalls answered with an error, by kind.', ['kind']),
    migrations: registry.counter('tier_migrations_total', 'Per-file migration actions, by action and outcome.', ['action', 'outcome']),
    bytes: registry.gauge('tier_bytes', 'Logical bytes of managed files, by state (from the catalog).', ['state']),
    files: registry.gauge('tier_files', 'Managed files, by state (from the catalog).', ['state']),
    tierBytes: registry.gauge('tier_tier_bytes', 'Logical bytes of managed files with a copy on a tier, by tier and state (from the catalog).', ['tier', 'state']),
    tierFiles: registry.gauge('tier_tier_files', 'Managed files with a copy on a tier, by tier and state (from the catalog).', ['tier', 'state']),
    queueDepth: registry.gauge('tier_queue_depth', 'Work waiting, by queue (recall, migration).', ['queue']),
    tierRequestErrors: registry.counter('tier_tier_request_errors_total', 'Failed tier requests (put/get/stat/delete/list), by tier.', ['tier']),
    policyRuns: registry.counter('tier_policy_runs_total', 'Policy runs, by trigger and outcome.', ['policy', 'trigger', 'outcome']),
    runsSkipped: registry.counter('tier_policy_runs_skipped_total', 'Policy runs skipped because the previous one was still going.', ['policy']),
    gcDeleted: registry.counter('tier_gc_objects_deleted_total', 'Orphan objects deleted by garbage collection, by tier.', ['tier']),
    dirtied: registry.counter('tier_files_dirtied_total', 'Archived files found changed (now dirty), by change tracking or a reconcile pass.'),
    throttleWait: registry.counter(
      'tier_throttle_wait_seconds_total',
      "Time tier requests waited for the tier's bwlimit/tpslimit, by tier and class (interactive: recalls; batch: migration, gc).",
      ['tier', 'class'],
    ),
  };
}

/** One finished recall: counts, bytes and latency, or an error by kind (e.g. 'NotFound', 'Timeout'). */
export function observeRecall(m: TierMetrics, r: { bytes: number; seconds: number; errorKind?: string }): void {
  if (r.errorKind) {
    m.recallErrors.inc({ kind: r.errorKind });
  } else {
    m.recalls.inc();
    m.recallBytes.inc({}, r.bytes);
  }
  m.recallLatency.observe({}, r.seconds);
}

/** Sets tier_bytes / tier_files from per-state totals; states absent from `rows` read 0. */
export function setStateTotals(m: TierMetrics, rows: { state: string; files: number; bytes: number }[]): void {
  for (const s of FILE_STATES) {
    const row = rows.find((r) => r.state === s);
    m.bytes.set({ state: s }, row?.bytes ?? 0);
    m.files.set({ state: s }, row?.files ?? 0);
  }
}

/** Sets tier_tier_bytes / tier_tier_files from (tier, state) totals; a tier no row names any more drops out. */
export function setTierTotals(m: TierMetrics, rows: { tier: string; state: string; files: number; bytes: number }[]): void {
  m.tierBytes.reset();
  m.tierFiles.reset();
  for (const r of rows) {
    m.tierBytes.set({ tier: r.tier, state: r.state }, r.bytes);
    m.tierFiles.set({ tier: r.tier, state: r.state }, r.files);
  }
}
