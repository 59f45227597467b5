// CST -> AST for `policy NAME on FILESET { ... }`: options, the watermark clause, order,
// limits and rules.
import type { CstNode } from 'chevrotain';
import type { OrderKey, PolicyDecl, Span } from './ast.js';
import type { Accept } from './diagnostics.js';
import { lastToken, node, nodes, token } from './cst.js';
import { comparisonOf, ruleToAst } from './to-ast-expr.js';
import { suggest } from './suggest.js';
import { blockSettings, readCount, readQuantity, readString } from './settings.js';
import { checkCount, checkCron, checkPositive, checkTimezone, checkWatermark } from './check-values.js';
import { describeValue, literalValue, spanFromTo, spanOf } from './values.js';

export const POLICY_OPTIONS = ['schedule', 'timezone', 'check_interval', 'cooldown', 'keep_deleted', 'concurrency'] as const;
export const ORDER_KEYS: readonly OrderKey[] = ['last_access', 'last_mod', 'last_change', 'size'];

/** `tiers`: tier names declared in the file (see ruleToAst). */
export function policyToAst(n: CstNode, file: string, accept: Accept, tiers?: ReadonlySet<string>): PolicyDecl | undefined {
  const name = token(n, 'name');
  if (!name) return undefined;
  const span = spanOf(name, file);
  const fs = token(n, 'fileset');
  if (!fs) accept('error', 'missing-fileset', `policy '${name.image}' needs a fileset: policy ${name.image} on FILESET { ... }`, span);
  const p: PolicyDecl = { name: name.image, span, fileset: fs?.image ?? '', filesetSpan: fs ? spanOf(fs, file) : span, rules: [] };
  const block = node(n, 'block');
  let cronSpan: Span | undefined;
  let tzSpan: Span | undefined;
  for (const s of blockSettings(block, 'policy', [...POLICY_OPTIONS, 'when', 'order', 'limit', 'rule'], file, accept)) {
    if (s.key === 'schedule') {
      const v = readString(s, accept);
      if (v !== undefined) [p.schedule, cronSpan] = [{ cron: v, span: s.span }, s.values[0]!.span];
    } else if (s.key === 'timezone') {
      p.timezone = readString(s, accept);
      if (p.timezone !== undefined) tzSpan = s.values[0]!.span;
    } else if (s.key === 'concurrency') p.concurrency = readCount(s, accept);
    else {
      const ms = readQuantity(s, 'duration', accept);
      if (s.key === 'check_interval') p.checkIntervalMs = ms;
      else if (s.key === 'cooldown') p.cooldownMs = ms;
      else if (s.key === 'keep_deleted') p.keepDeletedMs = ms;
    }
  }
  if (p.timezone !== undefined && tzSpan) checkTimezone(p.timezone, tzSpan, accept);
  if (p.schedule && cronSpan) checkCron(p.schedule.cron, p.timezone, cronSpan, accept);
  const once = (kind: string, list: CstNode[]): CstNode | undefined => {
    for (const extra of list.slice(1)) {
      const t = token(extra, `Kw_${kind}`);
      if (t) accept('error', 'duplicate-option', `'${kind}' is already set in this policy`, spanOf(t, file));
    }
    return list[0];
  };
  const when = once('when', nodes(block, 'whenClause'));
  if (when) watermarkToAst(when, p, file, accept);
  const order = once('order', nodes(block, 'orderClause'));
  if (order) orderToAst(order, p, file, accept);
  for (const l of nodes(block, 'limitClause')) limitToAst(l, p, file, accept);
  // Counted on the text, not on the rules built: a broken rule is still a rule, reported once.
  if (nodes(block, 'ruleDecl').length === 0) accept('error', 'no-rules', `policy '${p.name}' has no rules`, span);
  for (const r of nodes(block, 'ruleDecl')) {
    const rule = ruleToAst(r, file, accept, tiers);
    if (rule) p.rules.push(rule);
  }
  // Absent options stay absent (not undefined-valued keys) so the AST prints and compares cleanly.
  for (const k of Object.keys(p) as (keyof PolicyDecl)[]) if (p[k] === undefined) delete p[k];
  return p;
}

function watermarkToAst(n: CstNode, p: PolicyDecl, file: string, accept: Accept): void {
  const kw = token(n, 'Kw_when');
  const high = comparisonOf(node(n, 'high'), file, accept);
  const low = comparisonOf(node(n, 'low'), file, accept);
  if (!kw || !high) return;
  if (!token(n, 'Kw_until')) {
    accept('error', 'missing-until', "a watermark needs a low mark: when usage > 85% until usage < 70%", spanOf(kw, file));
    return;
  }
  if (!low) return; // `until` with a broken comparison: reported where it broke
  let ok = true;
  for (const [c, ops] of [
    [high, ['>']],
    [low, ['<']],
  ] as const) {
    if (c.attr !== ('usage' as string)) {
      accept('error', 'invalid-watermark', `watermarks compare 'usage' (the filesystem's fill level), not '${c.attr}'`, c.attrSpan);
      ok = false;
    } else if (!(ops as readonly string[]).includes(c.op)) {
      accept('error', 'invalid-watermark', `use '${ops[0]}' here: when usage > 85% until usage < 70%`, c.opSpan ?? c.attrSpan);
      ok = false;
    } else if (c.value.kind === 'number') {
      accept('error', 'missing-unit', `a watermark is a percentage: ${c.value.value}%`, c.value.span);
      ok = false;
    } else if (c.value.kind !== 'percent') {
      accept('error', 'type-mismatch', `a watermark is a percentage such as 85%, not ${describeValue(c.value)}`, c.value.span);
      ok = false;
    }
  }
  if (!ok || !checkWatermark(high.value, low.value, accept)) return;
  if (high.value.kind === 'percent' && low.value.kind === 'percent') {
    p.watermark = { high: high.value.value, low: low.value.value, span: spanFromTo(kw, lastToken(n), file) };
  }
}

function orderToAst(n: CstNode, p: PolicyDecl, file: string, accept: Accept): void {
  const kw = token(n, 'Kw_order');
  const key = token(n, 'key');
  const dir = token(n, 'dir');
  if (!kw || !key) return;
  if (!(ORDER_KEYS as readonly string[]).includes(key.image)) {
    const near = suggest(key.image, ORDER_KEYS);
    accept('error', 'invalid-value', `cannot order by '${key.image}'; use ${ORDER_KEYS.join(', ')}`, spanOf(key, file), near ? `did you mean '${near}'?` : undefined);
    return;
  }
  if (dir && dir.image !== 'asc' && dir.image !== 'desc') {
    accept('error', 'invalid-value', `order direction is asc or desc, not '${dir.image}'`, spanOf(dir, file));
    return;
  }
  p.orderBy = { key: key.image as OrderKey, dir: dir?.image === 'desc' ? 'desc' : 'asc', span: spanFromTo(kw, dir ?? key, file) };
}

function limitToAst(n: CstNode, p: PolicyDecl, file: string, accept: Accept): void {
  const kw = token(n, 'Kw_limit');
  const amountTok = token(n, 'amount');
  const unit = token(n, 'unit');
  const v = amountTok && literalValue(amountTok, file);
  if (!kw || !v) return;
  const dup = (what: string) => accept('error', 'duplicate-option', `a ${what} limit is already set in this policy`, spanOf(kw, file));
  if (v.kind === 'number' && unit && (unit.image === 'files' || unit.image === 'file')) {
    if (p.limitFiles !== undefined) return dup('file-count');
    if (checkCount(v.value, 'limit', v.span, accept)) p.limitFiles = v.value;
  } else if (v.kind === 'number' && !unit) {
    accept('error', 'missing-unit', `limit needs a unit: 'files' or a size`, v.span, `e.g. limit ${v.value} files, or limit ${v.value}GiB`);
  } else if (v.kind === 'size' && !unit) {
    if (p.limitBytes !== undefined) return dup('size');
    if (checkPositive(v.bytes, 'limit', v.span, accept)) p.limitBytes = v.bytes;
  } else if (unit) {
    accept('error', 'invalid-value', `limit takes N files or a size such as 2TiB, not '${unit.image}'`, spanOf(unit, file));
  } else {
    accept('error', 'type-mismatch', `limit takes N files or a size such as 2TiB, not ${describeValue(v)}`, v.span);
  }
}
