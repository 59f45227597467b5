// `tier report [--json] [--state-dir DIR] [--config POLICYFILE]`: reads the catalog and the
// recall log in STATE_DIR (never writes a file that is not there yet) and prints the report.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Catalog, CATALOG_FILE } from '../../engine/catalog.js';
import type { Printer } from '../io.js';
import { UserError, EXIT } from '../io.js';
import { buildReport, type Report } from '../../reports/report.js';
import { formatReport } from '../format/report-format.js';
import { RecallLog, recallLogPath } from '../../reports/recall-log.js';
import { loadCheckedPolicy } from './load-policy.js';

export interface ReportOptions {
  stateDir: string;
  json?: boolean;
  config?: string;
  top?: number;
  runs?: number;
  now?: number;
}

export async function gatherReport(opts: ReportOptions): Promise<Report> {
  const policy = opts.config ? await loadCheckedPolicy(opts.config) : undefined;
  const catFile = join(opts.stateDir, CATALOG_FILE);
  if (!existsSync(catFile)) throw new UserError(`no catalog at ${catFile}: nothing has been archived with this --state-dir yet`, EXIT.failed);
  const cat = new Catalog(catFile);
  const logFile = recallLogPath(opts.stateDir);
  const log = existsSync(logFile) ? new RecallLog(logFile) : null;
  try {
    return buildReport({
      rows: cat.all(),
      runs: cat.runs(opts.runs ?? 10),
      recalls: log?.totals() ?? { recalls: 0, bytes: 0, errors: 0, files: 0 },
      topRecalled: log?.top(opts.top ?? 10) ?? [],
      policy,
      now: opts.now ?? Date.now(),
    });
  } finally {
    log?.close();
    cat.close();
  }
}

export async function runReport(opts: ReportOptions, printer: Printer): Promise<number> {
  const r = await gatherReport(opts);
  if (opts.json) printer.out(JSON.stringify(r, null, 2));
  else for (const l of formatReport(r)) printer.out(l);
  return EXIT.ok;
}
