// `tier explain`, the pure part: for one file and every policy whose fileset holds it,
// every rule in order with each comparison's value (the engine's explain), the watermark
// state, the cool-down, and the action the next run would take, with the reason.
// Inputs are facts (stat + record, usage, last recall, now); no I/O here.
import type { PolicyDecl, PolicyFile, Span } from '../dsl/ast.js';
import { explain, type RuleTrace } from '../engine/evaluate.js';
import { classify, noDataMessage } from '../engine/plan.js';
import type { FileFacts } from '../engine/facts.js';
import { filesetMembership } from './membership.js';
import { nextRun } from '../schedule/cron.js';

export interface WatermarkView {
  high: number;
  low: number;
  usage: number | null; // percent; null when it could not be read
  triggered: boolean;
}

export interface NextAction {
  /** What the next run does to this file: an action kind, or 'none'. */
  action: 'archive' | 'release' | 'recall' | 'pin' | 'unpin' | 'none';
  tier?: string;
  rule?: string;
  span?: Span;
  /** Why there is no action, or what could still stop it. */
  why: string;
}

export interface PolicyExplanation {
  policy: string;
  span: Span;
  fileset: string;
  root: string;
  rel: string;
  schedule?: { cron: string; tz?: string; nextRunAt: number | null };
  watermark?: WatermarkView;
  cooldown?: { ms: number; lastRecallAt: number | null; active: boolean };
  decidedBy: string | null;
  rules: RuleTrace[];
  next: NextAction;
}

export interface FileExplanation {
  path: string;
  facts: FileFacts;
  policies: PolicyExplanation[];
  /** Filesets that do not hold the file, with the reason (for "why is nothing happening?"). */
  outside: { fileset: string; reason: string }[];
}

export interface ExplainInputs {
  now: number;
  /** Usage percent of the filesystem holding each root (absent: unknown). */
  usage: Map<string, number>;
  /** Last successful recall of this file, ms since epoch, or null. */
  lastRecallAt: number | null;
}

export function explainFile(pf: PolicyFile, facts: FileFacts, inp: ExplainInputs): FileExplanation {
  const out: FileExplanation = { path: facts.absPath, facts, policies: [], outside: [] };
  for (const fs of pf.filesets) {
    const m = filesetMembership(fs, facts.absPath);
    if (!m.member) {
      out.outside.push({ fileset: fs.name, reason: m.reason });
      continue;
    }
    for (const p of pf.policies.filter((q) => q.fileset === fs.name)) {
      // Rules see the path relative to the root the file is under, as in a scan.
      const f: FileFacts = { ...facts, root: m.root, path: m.rel };
      out.policies.push(explainPolicy(p, fs.name, m.root, f, inp));
    }
  }
  return out;
}

function explainPolicy(p: PolicyDecl, fileset: string, root: string, f: FileFacts, inp: ExplainInputs): PolicyExplanation {
  const ex = explain(p, f, inp.now);
  const res: PolicyExplanation = { policy: p.name, span: p.span, fileset, root, rel: f.path, decidedBy: ex.decidedBy, rules: ex.rules, next: { action: 'none', why: '' } };
  if (p.schedule) {
    let at: number | null = null;
    try {
      at = nextRun({ cron: p.schedule.cron, tz: p.timezone }, inp.now);
    } catch {
      at = null;
    }
    res.schedule = { cron: p.schedule.cron, tz: p.timezone, nextRunAt: at };
  }
  if (p.watermark) {
    const u = inp.usage.get(root) ?? null;
    res.watermark = { high: p.watermark.high, low: p.watermark.low, usage: u, triggered: u !== null && u > p.watermark.high };
  }
  if (p.cooldownMs !== undefined) {
    const active = inp.lastRecallAt !== null && inp.now - inp.lastRecallAt < p.cooldownMs;
    res.cooldown = { ms: p.cooldownMs, lastRecallAt: inp.lastRecallAt, active };
  }
  res.next = nextAction(p, f, res);
  return res;
}

function nextAction(p: PolicyDecl, f: FileFacts, res: PolicyExplanation): NextAction {
  const rule = p.rules.find((r) => r.name === res.decidedBy) ?? null;
  const c = classify(f, rule, p.name);
  const base = rule ? { rule: rule.name, span: rule.span } : {};
  if (typeof c === 'string') {
    const why: Record<typeof c, string> = {
      unmatched: 'no rule matches: the file is left alone',
      keep: `rule ${rule?.name} says keep`,
      noop: `already done (state ${f.state}${f.pinned ? ', pinned' : ''})`,
      pinned: 'the file is pinned: it is never released',
      limit: 'over the run limit',
      watermark: 'watermark not reached',
      nodata: noDataMessage(f),
    };
    return { action: 'none', ...base, why: why[c] };
  }
  if (res.watermark && !res.watermark.triggered) {
    const u = res.watermark.usage === null ? 'unknown' : `${res.watermark.usage.toFixed(1)}%`;
    return { action: 'none', ...base, why: `would ${c.kind}, but usage ${u} is not above the high watermark ${res.watermark.high}%` };
  }
  if (c.kind === 'release' && res.cooldown?.active) {
    return { action: 'none', ...base, why: `would release, but it was recalled within the cooldown (${Math.round(res.cooldown.ms / 1000)}s)` };
  }
  const caps: string[] = [];
  if (p.limitFiles !== undefined) caps.push(`${p.limitFiles} files`);
  if (p.limitBytes !== undefined) caps.push(`${p.limitBytes} bytes`);
  if (res.watermark) caps.push(`stopping once usage < ${res.watermark.low}%`);
  const when = res.schedule ? 'at the next scheduled run' : res.watermark ? 'at the next watermark check' : 'at the next `tier apply`';
  const why = `${when}${caps.length ? `, if the run reaches it before its limits (${caps.join(', ')})` : ''}`;
  return { action: c.kind, tier: c.tier, ...base, why };
}
