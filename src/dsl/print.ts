// The normalised form of a policy (`tier check --print`): one option per line, canonical
// units, defaults written out, so a review sees what the engine will do. Parsing the
// output gives back the same AST (tested).
import type { Action, Expr, FilesetDecl, PolicyDecl, PolicyFile, TierDecl } from './ast.js';
import { formatDuration, formatSize, formatValue, quote } from './values.js';

export function printPolicy(pf: PolicyFile): string {
  const out: string[] = [];
  for (const t of pf.tiers) out.push(...printTier(t), '');
  for (const f of pf.filesets) out.push(...printFileset(f), '');
  for (const p of pf.policies) out.push(...printPolicyDecl(p), '');
  out.push('recall {', `  whole_file_for ${pf.recall.wholeFileFor.map(quote).join(', ')}`, '}');
  return out.join('\n') + '\n';
}

function printTier(t: TierDecl): string[] {
  const lines = [`tier ${t.name} {`];
  if (t.kind === 'local') lines.push(`  local ${quote(t.path)}`);
  else if (t.kind === 'http') lines.push(`  http ${quote(t.url)}`);
  else {
    lines.push(`  s3 bucket ${quote(t.bucket)} prefix ${quote(t.prefix)}`);
    if (t.endpoint !== undefined) lines.push(`  endpoint ${quote(t.endpoint)}`);
    if (t.region !== undefined) lines.push(`  region ${quote(t.region)}`);
    if (t.storageClass !== undefined) lines.push(`  storage_class ${quote(t.storageClass)}`);
    if (t.profile !== undefined) lines.push(`  profile ${quote(t.profile)}`);
    if (t.pathStyle !== undefined) lines.push(`  path_style ${t.pathStyle}`);
    if (t.checksum !== undefined) lines.push(`  checksum ${t.checksum}`);
  }
  const u = t.tuning;
  lines.push(`  chunk ${formatSize(u.chunk)}`, `  readahead ${formatSize(u.readahead)}`, `  timeout ${formatDuration(u.timeoutMs)}`);
  lines.push(`  concurrency ${u.concurrency}`);
  if (u.bwlimit !== undefined) lines.push(`  bwlimit ${formatSize(u.bwlimit)}`);
  if (u.tpslimit !== undefined) lines.push(`  tpslimit ${u.tpslimit}`);
  lines.push('}');
  return lines;
}

function printFileset(f: FilesetDecl): string[] {
  const lines = [`fileset ${f.name} {`];
  lines.push(`  root ${f.roots.map(quote).join(', ')}`);
  if (f.backing) lines.push(`  backing ${quote(f.backing.path)}`);
  lines.push(`  include ${f.include.map(quote).join(', ')}`);
  if (f.exclude.length > 0) lines.push(`  exclude ${f.exclude.map(quote).join(', ')}`);
  lines.push('}');
  return lines;
}

function printPolicyDecl(p: PolicyDecl): string[] {
  const lines = [`policy ${p.name} on ${p.fileset} {`];
  if (p.schedule) lines.push(`  schedule ${quote(p.schedule.cron)}`);
  if (p.timezone !== undefined) lines.push(`  timezone ${quote(p.timezone)}`);
  if (p.watermark) lines.push(`  when usage > ${p.watermark.high}% until usage < ${p.watermark.low}%`);
  if (p.checkIntervalMs !== undefined) lines.push(`  check_interval ${formatDuration(p.checkIntervalMs)}`);
  if (p.orderBy) lines.push(`  order by ${p.orderBy.key} ${p.orderBy.dir}`);
  if (p.limitFiles !== undefined) lines.push(`  limit ${p.limitFiles} files`);
  if (p.limitBytes !== undefined) lines.push(`  limit ${formatSize(p.limitBytes)}`);
  if (p.concurrency !== undefined) lines.push(`  concurrency ${p.concurrency}`);
  if (p.cooldownMs !== undefined) lines.push(`  cooldown ${formatDuration(p.cooldownMs)}`);
  if (p.keepDeletedMs !== undefined) lines.push(`  keep_deleted ${formatDuration(p.keepDeletedMs)}`);
  if (p.rules.length > 0) lines.push('');
  const width = Math.max(0, ...p.rules.map((r) => r.name.length));
  for (const r of p.rules) {
    lines.push(`  rule ${(r.name + ':').padEnd(width + 1)} ${printExpr(r.cond)} -> ${printAction(r.action)}`);
  }
  lines.push('}');
  return lines;
}

export function printAction(a: Action): string {
  return a.kind === 'archive' || a.kind === 'release' ? `${a.kind} to ${a.tier}` : a.kind;
}

const PREC = { or: 1, and: 2, not: 3, cmp: 4, in: 4, true: 4 } as const;

/** Minimal parentheses: only where a looser operator sits under a tighter one. */
export function printExpr(e: Expr, parent = 0): string {
  let s: string;
  switch (e.kind) {
    case 'true':
      return 'true';
    case 'cmp':
      return `${e.attr} ${e.op} ${formatValue(e.value)}`;
    case 'in':
      return `${e.attr} ${e.negated ? 'not in' : 'in'} (${e.values.map(formatValue).join(', ')})`;
    case 'not':
      s = `not ${printExpr(e.operand, PREC.not)}`;
      break;
    case 'and':
    case 'or':
      // Same-operator chains print flat; the tree shape of a chain carries no meaning.
      s = `${printExpr(e.left, PREC[e.kind] - 0.5)} ${e.kind} ${printExpr(e.right, PREC[e.kind] - 0.5)}`;
      break;
  }
  return PREC[e.kind] < parent ? `(${s})` : s;
}
