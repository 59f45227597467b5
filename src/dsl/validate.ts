// Semantic checks over the whole AST, pure: each `checkXxx(node, ..., accept)` looks at one
// thing and reports through `accept`. Value-level checks live in check-values.ts.
import type { Action, Expr, PolicyDecl, PolicyFile, Rule, Span } from './ast.js';
import type { Accept } from './diagnostics.js';
import { checkComparison, checkMembership, type ExprContext } from './validate-expr.js';

/**
 * Whole-file checks: names, references, rules. `declared` adds names whose declarations had
 * errors, so a broken tier is not reported a second time as unknown where it is used.
 */
export function validatePolicyFile(pf: PolicyFile, accept: Accept, declared?: { tiers: Set<string>; filesets: Set<string> }): void {
  checkDuplicates(pf.tiers, 'tier', accept);
  checkDuplicates(pf.filesets, 'fileset', accept);
  checkDuplicates(pf.policies, 'policy', accept);
  const tiers = new Set([...pf.tiers.map((t) => t.name), ...(declared?.tiers ?? [])]);
  const filesets = new Set([...pf.filesets.map((f) => f.name), ...(declared?.filesets ?? [])]);
  const roots = new Map(pf.filesets.map((f) => [f.name, f.roots]));
  const readOnly = new Set(pf.tiers.filter((t) => t.kind === 'http').map((t) => t.name));
  for (const p of pf.policies) {
    checkPolicy(p, tiers, filesets, accept, { roots: roots.get(p.fileset) ?? [] });
    for (const r of p.rules) checkWritable(r, readOnly, accept);
  }
}

/** Nothing is archived or released to a read-only (http) tier: it only serves `tier import`. */
export function checkWritable(r: Rule, readOnly: Set<string>, accept: Accept): void {
  const a = r.action;
  if ((a.kind === 'archive' || a.kind === 'release') && readOnly.has(a.tier)) {
    accept('error', 'read-only-tier', `tier '${a.tier}' is an http tier: it is read-only (files come from it with \`tier import\`; ${a.kind} needs a local or s3 tier)`, a.tierSpan);
  }
}

export function checkDuplicates(items: readonly { name: string; span: Span }[], what: string, accept: Accept): void {
  const seen = new Map<string, Span>();
  for (const it of items) {
    const first = seen.get(it.name);
    if (first) accept('error', 'duplicate-name', `${what} '${it.name}' is already defined at line ${first.line}`, it.span);
    else seen.set(it.name, it.span);
  }
}

export function checkPolicy(p: PolicyDecl, tiers: Set<string>, filesets: Set<string>, accept: Accept, ctx: ExprContext = {}): void {
  if (p.fileset !== '' && !filesets.has(p.fileset)) {
    accept('error', 'unknown-fileset', `fileset '${p.fileset}' is not defined`, p.filesetSpan, known(filesets, 'filesets'));
  }
  checkDuplicates(p.rules, 'rule', accept);
  let always: Rule | undefined;
  for (const r of p.rules) {
    if (always) {
      accept('warning', 'unreachable-rule', `rule '${r.name}' is never reached: rule '${always.name}' (line ${always.span.line}) matches every file`, r.span);
    }
    if (r.cond.kind === 'true' && !always) always = r;
    checkRule(r, tiers, accept, ctx);
  }
}

export function checkRule(r: Rule, tiers: Set<string>, accept: Accept, ctx: ExprContext = {}): void {
  checkActionTier(r.action, tiers, accept);
  checkExpr(r.cond, accept, ctx);
}

export function checkActionTier(a: Action, tiers: ReadonlySet<string>, accept: Accept): void {
  if ((a.kind === 'archive' || a.kind === 'release') && !tiers.has(a.tier)) {
    accept('error', 'unknown-tier', `tier '${a.tier}' is not defined`, a.tierSpan, known(tiers, 'tiers'));
  }
}

/** Iterative walk: the tree is shallow by construction, but a stack costs nothing here. */
export function checkExpr(e: Expr, accept: Accept, ctx: ExprContext = {}): void {
  const todo: Expr[] = [e];
  while (todo.length > 0) {
    const x = todo.pop()!;
    if (x.kind === 'and' || x.kind === 'or') todo.push(x.right, x.left);
    else if (x.kind === 'not') todo.push(x.operand);
    else if (x.kind === 'cmp') checkComparison(x, accept, ctx);
    else if (x.kind === 'in') checkMembership(x, accept, ctx);
  }
}

function known(names: ReadonlySet<string>, what: string): string {
  return names.size === 0 ? `no ${what} are defined in this file` : `defined ${what}: ${[...names].join(', ')}`;
}
