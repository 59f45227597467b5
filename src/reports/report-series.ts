// `tier report`'s time series and filesystem figures, the pure part: which bucket width a
// recall timeline uses, the timeline with its empty buckets filled in, and each fileset's
// filesystem usage beside the watermarks its policies declare. No clock, no statfs here:
// report-run.ts reads the log and the filesystems and passes the figures in.
import type { PolicyFile } from '../dsl/ast.js';
import type { RecallBucketRow } from './recall-log.js';
import type { Usage } from '../schedule/usage.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** Bucket widths a timeline may use, narrowest first. */
export const TIMELINE_STEPS = [MIN, 5 * MIN, 15 * MIN, HOUR, 6 * HOUR, DAY, 7 * DAY];
/** How far back the timeline looks at most. */
export const TIMELINE_SPAN_MS = 90 * DAY;
const MAX_POINTS = 60;

export interface RecallTimeline {
  bucketMs: number;
  /** One point per bucket from the first recall's bucket to now's, empty buckets as zeros. */
  points: RecallBucketRow[];
}

/** The narrowest step that covers `spanMs` in at most MAX_POINTS buckets. */
export function chooseBucket(spanMs: number): number {
  return TIMELINE_STEPS.find((s) => spanMs / s < MAX_POINTS) ?? TIMELINE_STEPS[TIMELINE_STEPS.length - 1]!;
}

/** `rows` (non-empty buckets, ascending) spread over every bucket from `from` to `to`. */
export function fillTimeline(rows: RecallBucketRow[], bucketMs: number, from: number, to: number): RecallTimeline {
  const byAt = new Map(rows.map((r) => [r.at, r]));
  const points: RecallBucketRow[] = [];
  const first = Math.floor(from / bucketMs) * bucketMs;
  const last = Math.max(first, Math.floor(to / bucketMs) * bucketMs, rows.at(-1)?.at ?? first);
  for (let at = first; at <= last; at += bucketMs) {
    points.push(byAt.get(at) ?? { at, recalls: 0, errors: 0, bytes: 0, latencyAvgMs: 0, latencyMaxMs: 0 });
  }
  return { bucketMs, points };
}

export interface WatermarkMark {
  policy: string;
  high: number;
  low: number;
}

export interface FsView {
  fileset: string;
  /** The path statfs looked at: the fileset's backing when it has one, else its first root. */
  path: string;
  usage: Usage | null;
  /** Why usage is missing (statfs failed), else absent. */
  error?: string;
  marks: WatermarkMark[];
}

/** The path whose filesystem a fileset lives on (the backing stays mounted when the daemon is down). */
export function filesetProbePath(fs: { roots: string[]; backing?: { path: string } }): string | undefined {
  return fs.backing?.path ?? fs.roots[0];
}

/** One view per fileset of `policy`, with the watermarks of the policies on it. */
export function filesystemViews(policy: PolicyFile, usage: Map<string, Usage | Error>): FsView[] {
  const out: FsView[] = [];
  for (const fs of policy.filesets) {
    const path = filesetProbePath(fs);
    if (path === undefined) continue;
    const u = usage.get(path);
    const marks = policy.policies
      .filter((p) => p.fileset === fs.name && p.watermark)
      .map((p) => ({ policy: p.name, high: p.watermark!.high, low: p.watermark!.low }));
    const v: FsView = { fileset: fs.name, path, usage: u instanceof Error || u === undefined ? null : u, marks };
    if (u instanceof Error) v.error = u.message;
    else if (u === undefined) v.error = 'not measured';
    out.push(v);
  }
  return out;
}
