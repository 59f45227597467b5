// Terminal rendering of a FileExplanation: one block per policy, rules in order, each
// comparison with the file's value next to the policy's, the deciding rule marked.
import type { Attr } from '../../dsl/ast.js';
import type { CondTrace } from '../../engine/evaluate.js';
import { formatDuration, formatSize } from '../../dsl/values.js';
import type { FileExplanation } from '../../reports/explain.js';

const AGE: ReadonlySet<Attr> = new Set(['last_access', 'last_mod', 'last_change']);

/** An age or size the way an admin reads it: 45d 3h, 1.5 GiB. */
export function humanAge(ms: number): string {
  if (ms < 0) return `in the future (${humanAge(-ms)})`;
  const units: [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000], ['s', 1000]];
  const parts: string[] = [];
  let rest = Math.floor(ms);
  for (const [u, f] of units) {
    if (rest >= f && parts.length < 2) {
      parts.push(`${Math.floor(rest / f)}${u}`);
      rest %= f;
    }
  }
  return parts.length ? parts.join(' ') : `${Math.floor(ms)}ms`;
}

export function humanSize(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = b;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${b} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function show(attr: Attr, v: number | string | boolean, literal: boolean): string {
  if (typeof v === 'number' && AGE.has(attr)) return literal ? formatDuration(v) : humanAge(v);
  if (typeof v === 'number' && attr === 'size') return literal ? formatSize(v) : humanSize(v);
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function cond(c: CondTrace): string {
  const expected = Array.isArray(c.expected) ? `(${c.expected.map((x) => show(c.attr, x, true)).join(', ')})` : show(c.attr, c.expected, true);
  return `${c.result ? 'yes' : 'no '}  ${c.attr} ${c.op} ${expected}   (${c.attr} = ${show(c.attr, c.actual, false)})`;
}

export function formatExplanation(ex: FileExplanation, now: number): string[] {
  const f = ex.facts;
  const out = [
    ex.path,
    `  state ${f.state}${f.pinned ? ' (pinned)' : ''}   size ${humanSize(f.size)}   on disk ${humanSize(Math.min(f.blocks * 512, f.size))}   owner ${f.owner}:${f.group}`,
    `  last access ${humanAge(now - f.atimeMs)} ago   last mod ${humanAge(now - f.mtimeMs)} ago   last change ${humanAge(now - f.ctimeMs)} ago`,
  ];
  if (f.record?.copy) out.push(`  copy on tier ${f.record.copy.tier}, key ${f.record.copy.key}, archived ${new Date(f.record.copy.archivedAt).toISOString()}`);
  if (ex.policies.length === 0) {
    out.push('', 'no policy manages this file:');
    for (const o of ex.outside) out.push(`  fileset ${o.fileset}: ${o.reason}`);
    if (ex.outside.length === 0) out.push('  the policy file defines no fileset');
  }
  for (const p of ex.policies) {
    out.push('', `policy ${p.policy} (fileset ${p.fileset}, root ${p.root}, as ${JSON.stringify(p.rel)})   ${p.span.file}:${p.span.line}:${p.span.col}`);
    if (p.schedule) {
      const next = p.schedule.nextRunAt === null ? 'unknown' : new Date(p.schedule.nextRunAt).toISOString();
      out.push(`  schedule "${p.schedule.cron}"${p.schedule.tz ? ` (${p.schedule.tz})` : ''}: next run ${next}`);
    }
    if (p.watermark) {
      const w = p.watermark;
      const u = w.usage === null ? 'unknown' : `${w.usage.toFixed(1)}%`;
      out.push(`  watermark: usage ${u}, high ${w.high}%, low ${w.low}%: ${w.triggered ? 'TRIGGERED' : 'not triggered'}`);
    }
    if (p.cooldown) {
      const last = p.cooldown.lastRecallAt === null ? 'never recalled' : `last recalled ${humanAge(now - p.cooldown.lastRecallAt)} ago`;
      out.push(`  cooldown ${formatDuration(p.cooldown.ms)}: ${last}${p.cooldown.active ? ' (ACTIVE: no release)' : ''}`);
    }
    for (const r of p.rules) {
      const mark = r.rule === p.decidedBy ? 'DECIDES' : r.matched ? 'matches (an earlier rule decided)' : 'no match';
      out.push(`  rule ${r.rule}   ${r.span.file}:${r.span.line}:${r.span.col}   ${mark}`);
      if (r.conditions.length === 0) out.push('      (no condition: always matches)');
      for (const c of r.conditions) out.push(`      ${cond(c)}`);
    }
    const n = p.next;
    const act = n.action === 'none' ? 'nothing' : `${n.action}${n.tier ? ` to ${n.tier}` : ''}${n.rule ? ` (rule ${n.rule})` : ''}`;
    out.push(`  next run: ${act}: ${n.why}`);
  }
  return out;
}
