// `tier report --html`: the Report object (the same one `--json` prints) as one
// self-contained HTML page. Pure: report in, string out; report-run.ts writes the file.
// Rules: no script and no external reference at all (a CSP meta forbids any load, so the
// page opens the same on an air-gapped box); each chart's figures sit in data- attributes
// (test/ops/report-html-browser.test.ts compares them with --json) and in a table beside it.
import { humanAge, humanSize } from '../explain-format.js';
import type { Bucket, Report, RunView } from '../../../reports/report.js';
import type { FsView } from '../../../reports/report-series.js';
import { dataAttrs, esc, fmtMs, hbars, pairedBars, patternDefs, timeline, usageBar, type BarItem, type PatternId } from './svg.js';

const STATE_PATTERN: Record<string, PatternId> = { resident: 'p-solid', archived: 'p-diag', dirty: 'p-cross', released: 'p-dots', partial: 'p-horiz' };

export const CSP = "default-src 'none'; style-src 'unsafe-inline'";

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111;background:#fff;margin:0 auto;max-width:980px;padding:12px 20px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:22px 0 6px;border-bottom:1px solid #999}
.lead{color:#333;margin:0 0 8px}.grid{display:flex;flex-wrap:wrap;gap:4px 24px;align-items:flex-start}
svg.chart{display:block;font-size:12px;overflow:visible}svg .num{font-weight:600}svg .small{font-size:10px}svg .none{fill:#666;font-style:italic}
table{border-collapse:collapse;font-size:12px;margin:4px 0}td,th{padding:1px 8px;text-align:right;border-bottom:1px solid #ddd}
td:first-child,th:first-child{text-align:left}th{font-weight:600}caption{text-align:left;font-size:12px;color:#444}
.scroll{max-height:260px;overflow:auto;display:inline-block}.path{font-family:ui-monospace,monospace;word-break:break-all}
@media print{body{max-width:none}h2{break-after:avoid}}`;

export function renderReportHtml(r: Report): string {
  const when = fmtTime(r.generatedAt);
  const body = [
    `<h1>tier report</h1>`,
    `<p class="lead" data-figure="totals"${dataAttrs({ files: r.totals.files, bytes: r.totals.bytes, deletedFiles: r.deleted.files, deletedBytes: r.deleted.bytes, generatedAt: r.generatedAt })}>` +
      `${when}: <b>${r.totals.files}</b> managed files, <b>${esc(humanSize(r.totals.bytes))}</b>` +
      (r.deleted.files ? `; deleted, awaiting gc: ${r.deleted.files} files, ${esc(humanSize(r.deleted.bytes))} on tiers` : '') +
      `</p>`,
    patternDefs(),
    section('Files and bytes per state', bucketChart('bytes per state', r.byState, 'byState', r.totals.bytes, (b) => STATE_PATTERN[b.label])),
    section('Per tier (files with a copy)', bucketChart('bytes per tier', r.byTier, 'byTier', r.totals.bytes)),
    r.byPolicy
      ? section('Per policy (files in its fileset)', bucketChart('bytes per policy', r.byPolicy.map((p) => ({ ...p, label: `${p.label} (${p.fileset})` })), 'byPolicy', r.totals.bytes))
      : '',
    section('Size', bucketChart('files per size', r.size, 'size', r.totals.bytes, () => 'p-solid', 'files')),
    section('Time since archived', bucketChart('files per time since archived', r.archiveAge, 'archiveAge', r.totals.bytes, () => 'p-diag', 'files')),
    section('Recalls over time', recallSection(r)),
    section('Most recalled files', topSection(r)),
    section('Last runs', runsSection(r.lastRuns)),
    section('Filesystem usage and watermarks', fsSection(r.filesystems)),
  ];
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">` +
    `<meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>tier report ${esc(when)}</title><style>${CSS}</style></head>\n<body>\n${body.filter(Boolean).join('\n')}\n</body></html>\n`
  );
}

function files(n: number): string {
  return `${n} ${n === 1 ? 'file' : 'files'}`;
}

function section(title: string, inner: string): string {
  return `<section><h2>${esc(title)}</h2>${inner}</section>`;
}

function bucketChart(title: string, bs: Bucket[], figure: string, total: number, pattern?: (b: Bucket) => PatternId | undefined, by: 'bytes' | 'files' = 'bytes'): string {
  const items: BarItem[] = bs.map((b) => ({
    label: b.label,
    value: b[by],
    text: `${files(b.files)}, ${humanSize(b.bytes)}`,
    pattern: pattern?.(b),
    data: { label: b.label, files: b.files, bytes: b.bytes },
  }));
  const rows = bs.map((b) => [esc(b.label), String(b.files), esc(humanSize(b.bytes)), total ? `${((100 * b.bytes) / total).toFixed(1)}%` : '-']);
  return `<div class="grid">${hbars(title, items, { figure })}${table(`${title}: figures`, ['', 'files', 'bytes', 'share of bytes'], rows)}</div>`;
}

function recallSection(r: Report): string {
  const t = r.recallTimeline;
  const pts = t.points.map((p) => ({
    at: p.at,
    count: p.recalls,
    errors: p.errors,
    avgMs: p.latencyAvgMs,
    maxMs: p.latencyMaxMs,
    data: { at: p.at, recalls: p.recalls, errors: p.errors, bytes: p.bytes, latencyAvgMs: p.latencyAvgMs, latencyMaxMs: p.latencyMaxMs },
  }));
  const lead =
    `<p data-figure="recalls"${dataAttrs({ recalls: r.recalls.recalls, bytes: r.recalls.bytes, errors: r.recalls.errors, files: r.recalls.files, bucketMs: t.bucketMs })}>` +
    `${r.recalls.recalls} ${r.recalls.recalls === 1 ? 'recall' : 'recalls'} of ${files(r.recalls.files)} fetched ${esc(humanSize(r.recalls.bytes))}; ${r.recalls.errors} failed. ` +
    `One column per ${esc(humanAge(t.bucketMs))}.</p>`;
  const busy = t.points.filter((p) => p.recalls + p.errors > 0);
  const rows = busy.map((p) => [esc(fmtTime(p.at)), String(p.recalls), String(p.errors), esc(humanSize(p.bytes)), esc(fmtMs(p.latencyAvgMs)), esc(fmtMs(p.latencyMaxMs))]);
  const tab = table('buckets with recalls', ['from', 'recalls', 'failed', 'bytes', 'avg latency', 'max latency'], rows);
  return lead + timeline('recalls and average latency per time bucket', pts, 'recallTimeline', fmtTime) + (tab ? `<div class="scroll">${tab}</div>` : '');
}

function topSection(r: Report): string {
  const items: BarItem[] = r.topRecalled.map((t) => ({
    label: t.path,
    value: t.recalls,
    text: `${t.recalls} × ${humanSize(t.bytes)}`,
    pattern: 'p-dots',
    data: { path: t.path, recalls: t.recalls, bytes: t.bytes, lastAt: t.lastAt },
  }));
  const rows = r.topRecalled.map((t) => [`<span class="path">${esc(t.path)}</span>`, String(t.recalls), esc(humanSize(t.bytes)), `${esc(humanAge(r.generatedAt - t.lastAt))} ago`]);
  return `<div class="grid">${hbars('most recalled files (recalls)', items, { figure: 'topRecalled', labelWidth: 160 })}${table('most recalled files', ['path', 'recalls', 'bytes', 'last'], rows)}</div>`;
}

function runsSection(runs: RunView[]): string {
  const groups = runs.map((x) => ({
    label: `#${x.id} ${x.policy ?? '(all)'} ${fmtTime(x.startedAt).slice(5, 16)}`,
    a: x.moved ?? 0,
    b: x.freed ?? 0,
    aText: x.moved === null ? '-' : humanSize(x.moved),
    bText: x.freed === null ? '-' : humanSize(x.freed),
    data: { id: x.id, policy: x.policy ?? '', outcome: x.outcome, moved: x.moved ?? '', freed: x.freed ?? '', startedAt: x.startedAt },
  }));
  const rows = runs.map((x) => [
    String(x.id),
    esc(x.policy ?? '(all)'),
    esc(fmtTime(x.startedAt)),
    x.durationMs === null ? '-' : `${(x.durationMs / 1000).toFixed(1)} s`,
    esc(x.outcome + (x.dryRun ? ' (dry run)' : '')),
    x.moved === null ? '-' : esc(humanSize(x.moved)),
    x.freed === null ? '-' : esc(humanSize(x.freed)),
  ]);
  return `<div class="grid">${pairedBars('moved and freed per run', groups, ['moved to tier', 'freed'], 'lastRuns')}${table('last runs', ['run', 'policy', 'started', 'took', 'outcome', 'moved', 'freed'], rows)}</div>`;
}

function fsSection(fss: FsView[] | null): string {
  if (fss === null) return `<p data-figure="filesystems" data-none="no-config">Run <code>tier report --html FILE --config POLICYFILE</code> to see each fileset's filesystem against its watermarks.</p>`;
  if (fss.length === 0) return `<p data-figure="filesystems" data-none="no-filesets">The policy file declares no fileset.</p>`;
  return fss
    .map((f) => {
      const head = `<h3 style="font-size:14px;margin:10px 0 0">${esc(f.fileset)} <span class="path">${esc(f.path)}</span></h3>`;
      if (!f.usage) return head + `<p data-figure="filesystems"${dataAttrs({ fileset: f.fileset, error: f.error ?? '' })}>usage unknown: ${esc(f.error ?? '')}</p>`;
      const u = f.usage;
      const marks = f.marks.flatMap((m) => [
        { label: `${m.policy}: runs above ${m.high}%`, at: m.high, dash: '6 3' },
        { label: `${m.policy}: stops below ${m.low}%`, at: m.low, dash: '2 2' },
      ]);
      const text = `${u.percent.toFixed(1)}% used: ${humanSize(u.usedBytes)} of ${humanSize(u.totalBytes)}` + (f.marks.length ? '' : ' (no watermark on this fileset)');
      const data: Record<string, string | number> = { fileset: f.fileset, path: f.path, percent: u.percent, usedBytes: u.usedBytes, totalBytes: u.totalBytes };
      f.marks.forEach((m, i) => Object.assign(data, { [`high${i}`]: m.high, [`low${i}`]: m.low }));
      return head + usageBar(`${f.fileset} usage`, u.percent, text, marks, data, 'filesystems');
    })
    .join('');
}

function table(caption: string, head: string[], rows: string[][]): string {
  if (rows.length === 0) return '';
  return `<table><caption>${esc(caption)}</caption><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** UTC, minutes: the page is made on the server, which does not know the reader's zone. */
export function fmtTime(t: number): string {
  return new Date(t).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}
