// Terminal rendering of a Report: aligned tables, sizes in binary units, like rbh-report.
import { humanAge, humanSize } from './explain-format.js';
import type { Bucket, Report } from '../../reports/report.js';

function table(head: string[], rows: string[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}

function buckets(title: string, bs: Bucket[], total: number): string[] {
  const rows = bs.map((b) => [b.label, String(b.files), humanSize(b.bytes), total ? `${((100 * b.bytes) / total).toFixed(1)}%` : '-']);
  return ['', title, ...table(['', 'files', 'bytes', 'share'], rows).map((l) => '  ' + l)];
}

export function formatReport(r: Report): string[] {
  const out = [`tier report at ${new Date(r.generatedAt).toISOString()}: ${r.totals.files} managed files, ${humanSize(r.totals.bytes)}`];
  out.push(...buckets('by state', r.byState, r.totals.bytes));
  if (r.deleted.files > 0) out.push(`  deleted, awaiting gc: ${r.deleted.files} files, ${humanSize(r.deleted.bytes)} on tiers`);
  out.push(...buckets('by tier (files with a copy)', r.byTier, r.totals.bytes));
  if (r.byPolicy) out.push(...buckets('by policy (files in its fileset)', r.byPolicy.map((p) => ({ ...p, label: `${p.label} (${p.fileset})` })), r.totals.bytes));
  out.push(...buckets('by size', r.size, r.totals.bytes));
  out.push(...buckets('by time since archived', r.archiveAge, r.totals.bytes));
  out.push('', `recalls: ${r.recalls.recalls} (${humanSize(r.recalls.bytes)}, ${r.recalls.files} files), errors ${r.recalls.errors}`);
  if (r.topRecalled.length) {
    out.push('top recalled files');
    const rows = r.topRecalled.map((t) => [t.path, String(t.recalls), humanSize(t.bytes), `${humanAge(r.generatedAt - t.lastAt)} ago`]);
    out.push(...table(['', 'recalls', 'bytes', 'last'], rows).map((l) => '  ' + l));
  }
  if (r.filesystems?.length) {
    out.push('', 'filesystems (usage against watermarks)');
    for (const f of r.filesystems) {
      const marks = f.marks.map((m) => `${m.policy} above ${m.high}% until below ${m.low}%`).join('; ') || 'no watermark';
      out.push(`  ${f.fileset} ${f.path}: ${f.usage ? `${f.usage.percent.toFixed(1)}% used (${humanSize(f.usage.usedBytes)} of ${humanSize(f.usage.totalBytes)})` : `usage unknown: ${f.error}`}; ${marks}`);
    }
  }
  out.push('', 'last runs');
  if (r.lastRuns.length === 0) out.push('  none yet');
  else {
    const rows = r.lastRuns.map((x) => [
      String(x.id),
      x.policy ?? '(all)',
      new Date(x.startedAt).toISOString(),
      x.durationMs === null ? '-' : `${(x.durationMs / 1000).toFixed(1)}s`,
      x.outcome + (x.dryRun ? ' (dry run)' : ''),
      x.summary === null ? '' : JSON.stringify(x.summary).slice(0, 80),
    ]);
    out.push(...table(['id', 'policy', 'started', 'took', 'outcome', 'summary'], rows).map((l) => '  ' + l));
  }
  return out;
}
