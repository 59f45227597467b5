// `tier report [--json] [--html FILE] [--state-dir DIR] [--config POLICYFILE]`: reads the
// catalog and the recall log in STATE_DIR (never writes a file that is not there yet) and
// prints the report; --html writes the same figures as one page (temp file, then rename).
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Catalog, CATALOG_FILE } from '../../engine/catalog.js';
import type { Printer } from '../io.js';
import { UserError, EXIT } from '../io.js';
import { buildReport, type Report } from '../../reports/report.js';
import { formatReport } from '../format/report-format.js';
import { RecallLog, recallLogPath } from '../../reports/recall-log.js';
import { loadCheckedPolicy } from './load-policy.js';
import { chooseBucket, fillTimeline, filesetProbePath, filesystemViews, TIMELINE_SPAN_MS } from '../../reports/report-series.js';
import { fsUsage, type Usage } from '../../schedule/usage.js';
import { renderReportHtml } from '../format/report-html/page.js';

export interface ReportOptions {
  stateDir: string;
  json?: boolean;
  html?: string;
  config?: string;
  top?: number;
  runs?: number;
  now?: number;
}

/** A timeline shows at least this many columns, so a burst of recalls has time around it. */
const MIN_COLUMNS = 15;

export async function gatherReport(opts: ReportOptions): Promise<Report> {
  const policy = opts.config ? await loadCheckedPolicy(opts.config) : undefined;
  const catFile = join(opts.stateDir, CATALOG_FILE);
  if (!existsSync(catFile)) throw new UserError(`no catalog at ${catFile}: nothing has been archived with this --state-dir yet`, EXIT.failed);
  const cat = new Catalog(catFile);
  const logFile = recallLogPath(opts.stateDir);
  const log = existsSync(logFile) ? new RecallLog(logFile) : null;
  const now = opts.now ?? Date.now();
  const usage = new Map<string, Usage | Error>();
  for (const fs of policy?.filesets ?? []) {
    const p = filesetProbePath(fs);
    if (p !== undefined && !usage.has(p)) usage.set(p, await fsUsage(p).catch((e: Error) => e));
  }
  try {
    const since = Math.max(0, now - TIMELINE_SPAN_MS);
    const first = log?.firstAt(since) ?? null;
    const bucketMs = chooseBucket(first === null ? 0 : now - first);
    return buildReport({
      rows: cat.all(),
      runs: cat.runs(opts.runs ?? 10),
      recalls: log?.totals() ?? { recalls: 0, bytes: 0, errors: 0, files: 0 },
      topRecalled: log?.top(opts.top ?? 10) ?? [],
      recallTimeline: first === null ? { bucketMs, points: [] } : fillTimeline(log!.timeline(first, bucketMs), bucketMs, Math.min(first, now - (MIN_COLUMNS - 1) * bucketMs), now),
      filesystems: policy ? filesystemViews(policy, usage) : undefined,
      policy,
      now,
    });
  } finally {
    log?.close();
    cat.close();
  }
}

export async function runReport(opts: ReportOptions, printer: Printer): Promise<number> {
  const r = await gatherReport(opts);
  if (opts.html !== undefined) writeHtml(opts.html, renderReportHtml(r));
  if (opts.json) printer.out(JSON.stringify(r, null, 2));
  else if (opts.html !== undefined) printer.out(`report page written to ${resolve(opts.html)}`);
  else for (const l of formatReport(r)) printer.out(l);
  return EXIT.ok;
}

function writeHtml(file: string, html: string): void {
  const tmp = join(dirname(file), `.${Date.now()}-${process.pid}.tier-report.tmp`);
  try {
    writeFileSync(tmp, html, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new UserError(`report --html ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.failed);
  }
}
