// `tier report`, the pure part: aggregates catalog rows, runs and recall-log figures into
// one plain-JSON document (the --json output; the text view renders the same object).
// Like rbh-report: counts and bytes per state, tier and policy, histograms, top recalls.
import type { FileState, PolicyFile } from '../dsl/ast.js';
import type { CatalogRow, RunRow } from '../engine/catalog.js';
import { filesetMembership } from './membership.js';
import type { RecallTotals, TopRecalled } from './recall-log.js';
import type { FsView, RecallTimeline } from './report-series.js';

export interface Bucket {
  label: string;
  files: number;
  bytes: number;
}

export interface RunView extends RunRow {
  durationMs: number | null;
  outcome: 'ok' | 'failed' | 'unfinished';
  /** Bytes uploaded to tiers and bytes of blocks freed, from the summary (null when it has none). */
  moved: number | null;
  freed: number | null;
}

export interface Report {
  generatedAt: number;
  totals: { files: number; bytes: number };
  /** Files change tracking saw deleted whose tier copy gc has not collected yet (not in the other figures). */
  deleted: { files: number; bytes: number };
  byState: Bucket[];
  byTier: Bucket[];
  byPolicy: (Bucket & { fileset: string })[] | null; // null without --config
  archiveAge: Bucket[]; // time since the copy was made
  size: Bucket[];
  recalls: RecallTotals;
  topRecalled: TopRecalled[];
  /** Recalls per time bucket, from the first logged recall (within 90 days) to now. */
  recallTimeline: RecallTimeline;
  lastRuns: RunView[];
  /** Usage of each fileset's filesystem against its policies' watermarks; null without --config. */
  filesystems: FsView[] | null;
}

export const STATES: readonly FileState[] = ['resident', 'archived', 'dirty', 'released', 'partial'];

const KiB = 1024;
const MiB = KiB * 1024;
const GiB = MiB * 1024;
export const SIZE_BUCKETS: [string, number][] = [
  ['< 4 KiB', 4 * KiB], ['< 64 KiB', 64 * KiB], ['< 1 MiB', MiB], ['< 16 MiB', 16 * MiB],
  ['< 256 MiB', 256 * MiB], ['< 4 GiB', 4 * GiB], ['>= 4 GiB', Infinity],
];
const H = 3_600_000;
const D = 24 * H;
export const AGE_BUCKETS: [string, number][] = [
  ['< 1 h', H], ['< 1 d', D], ['< 7 d', 7 * D], ['< 30 d', 30 * D], ['< 90 d', 90 * D], ['< 1 y', 365 * D], ['>= 1 y', Infinity],
];

export interface ReportInputs {
  rows: Iterable<CatalogRow>;
  runs: RunRow[];
  recalls: RecallTotals;
  topRecalled: TopRecalled[];
  recallTimeline?: RecallTimeline;
  filesystems?: FsView[];
  policy?: PolicyFile;
  now: number;
}

export function buildReport(inp: ReportInputs): Report {
  const byState = new Map<string, Bucket>(STATES.map((s) => [s, { label: s, files: 0, bytes: 0 }]));
  const byTier = new Map<string, Bucket>();
  const size = SIZE_BUCKETS.map(([label]) => ({ label, files: 0, bytes: 0 }));
  const age = [...AGE_BUCKETS.map(([label]) => ({ label, files: 0, bytes: 0 })), { label: 'never archived', files: 0, bytes: 0 }];
  const policies = inp.policy?.policies.map((p) => ({ label: p.name, fileset: p.fileset, files: 0, bytes: 0 })) ?? null;
  const totals = { files: 0, bytes: 0 };
  const deleted = { files: 0, bytes: 0 };
  const add = (b: { files: number; bytes: number }, bytes: number) => {
    b.files++;
    b.bytes += bytes;
  };

  for (const r of inp.rows) {
    if (r.deletedAt) {
      add(deleted, r.size);
      continue;
    }
    add(totals, r.size);
    let st = byState.get(r.state);
    if (!st) byState.set(r.state, (st = { label: r.state, files: 0, bytes: 0 }));
    add(st, r.size);
    if (r.tier !== null) {
      let t = byTier.get(r.tier);
      if (!t) byTier.set(r.tier, (t = { label: r.tier, files: 0, bytes: 0 }));
      add(t, r.size);
    }
    add(size[SIZE_BUCKETS.findIndex(([, lim]) => r.size < lim)]!, r.size);
    add(r.archivedAt === null ? age[age.length - 1]! : age[AGE_BUCKETS.findIndex(([, lim]) => inp.now - r.archivedAt! < lim)]!, r.size);
    if (policies && inp.policy) {
      for (const fs of inp.policy.filesets) {
        if (!filesetMembership(fs, r.path).member) continue;
        for (const p of policies) if (p.fileset === fs.name) add(p, r.size);
      }
    }
  }
  return {
    generatedAt: inp.now,
    totals,
    deleted,
    byState: [...byState.values()],
    byTier: [...byTier.values()].sort((a, b) => (a.label < b.label ? -1 : 1)),
    byPolicy: policies,
    archiveAge: age,
    size,
    recalls: inp.recalls,
    topRecalled: inp.topRecalled,
    recallTimeline: inp.recallTimeline ?? { bucketMs: 60_000, points: [] },
    lastRuns: inp.runs.map(runView),
    filesystems: inp.filesystems ?? null,
  };
}

function runView(r: RunRow): RunView {
  return {
    ...r,
    durationMs: r.finishedAt === null ? null : r.finishedAt - r.startedAt,
    outcome: r.finishedAt === null ? 'unfinished' : failures(r.summary) > 0 ? 'failed' : 'ok',
    moved: summaryNumber(r.summary, 'uploaded'),
    freed: summaryNumber(r.summary, 'freed'),
  };
}

function summaryNumber(summary: unknown, key: string): number | null {
  const v = summary && typeof summary === 'object' ? (summary as Record<string, unknown>)[key] : undefined;
  return typeof v === 'number' ? v : null;
}

/** Failures in a run summary, whatever shape the engine chose: a `failed` count or list. */
export function failures(summary: unknown): number {
  if (!summary || typeof summary !== 'object') return 0;
  const s = summary as Record<string, unknown>;
  for (const k of ['failed', 'failures', 'errors']) {
    const v = s[k];
    if (typeof v === 'number') return v;
    if (Array.isArray(v)) return v.length;
  }
  const counts = s.counts as Record<string, unknown> | undefined;
  return typeof counts?.failed === 'number' ? counts.failed : 0;
}
