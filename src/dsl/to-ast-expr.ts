// CST -> AST for rules: conditions and actions. `a or b or c` becomes a balanced tree (same
// meaning, evaluated left to right) so a rule with thousands of terms stays shallow for the
// recursive code downstream (validator, printer, engine).
import type { CstNode } from 'chevrotain';
import type { Action, Attr, CmpOp, Expr, Rule, Span } from './ast.js';
import type { Accept } from './diagnostics.js';
import { firstToken, lastToken, node, nodes, token, tokens } from './cst.js';
import { literalValue, spanFromTo, spanOf, unitHint } from './values.js';
import { suggest } from './suggest.js';
import { checkActionTier, checkExpr } from './validate.js';

export const MAX_NOT_CHAIN = 64;

/** `tiers`: the tiers declared in the file, to check the action of a rule whose condition broke. */
export function ruleToAst(n: CstNode, file: string, accept: Accept, tiers?: ReadonlySet<string>): Rule | undefined {
  const name = token(n, 'name');
  const cond = exprOf(node(n, 'orExpr'), file, accept);
  const action = actionOf(node(n, 'action'), file, accept);
  const kw = token(n, 'Kw_rule');
  // A rule with a broken part is dropped, but its other part still gets its checks: a
  // wrong unit and an unknown tier are two mistakes.
  if (cond && !action) checkExpr(cond, accept);
  if (!cond && action && tiers) checkActionTier(action, tiers, accept);
  if (!name || !cond || !action || !kw) return undefined;
  return { name: name.image, span: spanFromTo(kw, lastToken(n), file), cond, action };
}

const VERBS = ['keep', 'pin', 'unpin', 'recall', 'archive', 'release'] as const;

function actionOf(n: CstNode | undefined, file: string, accept: Accept): Action | undefined {
  const verb = token(n, 'verb');
  if (!n || !verb) return undefined;
  const span = spanFromTo(verb, lastToken(n), file);
  const bare = token(n, 'bareTier');
  if (bare) accept('error', 'syntax', `expected 'to' before '${bare.image}'`, spanOf(bare, file), `write ${verb.image} to ${bare.image}`);
  const target = token(n, 'tier') ?? bare;
  const v = verb.image;
  if (v === 'archive' || v === 'release') {
    if (!target) {
      // `release to` and nothing: the parser already said a name is missing.
      if (token(n, 'Kw_to')) return undefined;
      accept('error', 'missing-tier', `'${v}' needs a destination: ${v} to TIER`, spanOf(verb, file));
      return undefined;
    }
    return { kind: v, tier: target.image, tierSpan: spanOf(target, file), span };
  }
  if (v === 'keep' || v === 'pin' || v === 'unpin' || v === 'recall') {
    if (target) {
      accept('error', 'unexpected-tier', `'${v}' takes no tier; only archive and release do`, spanOf(target, file));
      return undefined;
    }
    return { kind: v, span };
  }
  const near = suggest(v, VERBS);
  accept(
    'error',
    'unknown-action',
    `unknown action '${v}'; actions are keep, pin, unpin, recall, archive to TIER, release to TIER`,
    spanOf(verb, file),
    near ? `did you mean '${near}'?` : undefined,
  );
  return undefined;
}

function exprOf(n: CstNode | undefined, file: string, accept: Accept): Expr | undefined {
  if (!n) return undefined;
  const parts = nodes(n, 'operands').map((c) => (n.name === 'orExpr' ? exprOf(c, file, accept) : notOf(c, file, accept)));
  if (parts.length === 0 || parts.some((p) => p === undefined)) return undefined;
  return balanced(parts as Expr[], n.name === 'orExpr' ? 'or' : 'and');
}

function balanced(parts: Expr[], kind: 'and' | 'or'): Expr {
  if (parts.length === 1) return parts[0]!;
  const mid = Math.ceil(parts.length / 2);
  const left = balanced(parts.slice(0, mid), kind);
  const right = balanced(parts.slice(mid), kind);
  return { kind, left, right, span: joinSpans(left.span, right.span) };
}

function joinSpans(a: Span, b: Span): Span {
  return a.line === b.line && b.col >= a.col ? { ...a, length: b.col + b.length - a.col } : a;
}

function notOf(n: CstNode, file: string, accept: Accept): Expr | undefined {
  const nots = tokens(n, 'Kw_not');
  const inner = primaryOf(node(n, 'primary'), file, accept);
  if (!inner) return undefined;
  if (nots.length > MAX_NOT_CHAIN) {
    accept('error', 'nesting-too-deep', `more than ${MAX_NOT_CHAIN} 'not' in a row`, spanOf(nots[0]!, file));
    return undefined;
  }
  let e = inner;
  for (let i = nots.length - 1; i >= 0; i--) {
    const t = nots[i]!;
    const s = spanOf(t, file);
    e = { kind: 'not', operand: e, span: joinSpans(s, e.span) };
  }
  return e;
}

function primaryOf(n: CstNode | undefined, file: string, accept: Accept): Expr | undefined {
  if (!n) return undefined;
  const always = token(n, 'always');
  if (always) return { kind: 'true', span: spanOf(always, file) };
  const inner = node(n, 'orExpr');
  if (inner) {
    const e = exprOf(inner, file, accept);
    const open = token(n, 'LParen');
    // The parenthesised span covers the parentheses, so messages point at the group.
    return e && open ? { ...e, span: spanFromTo(open, token(n, 'RParen') ?? lastToken(inner), file) } : e;
  }
  const m = node(n, 'membership');
  if (m) return membershipOf(m, file);
  return comparisonOf(node(n, 'comparison'), file, accept);
}

/** `attr [not] in (v, ...)`; items the lexer already reported (bad quantities) are left out. */
function membershipOf(n: CstNode, file: string): Expr | undefined {
  const attr = token(n, 'attr');
  const op = token(n, 'op');
  const items = tokens(n, 'items');
  if (!attr || !op || items.length === 0) return undefined;
  const not = token(n, 'not');
  const values = items.map((t) => literalValue(t, file)).filter((v) => v !== undefined);
  if (values.length === 0) return undefined;
  return {
    kind: 'in',
    attr: attr.image as Attr,
    attrSpan: spanOf(attr, file),
    negated: not !== undefined,
    opSpan: spanFromTo(not ?? op, op, file),
    values,
    span: spanFromTo(attr, token(n, 'RParen') ?? items[items.length - 1], file),
  };
}

export function comparisonOf(
  n: CstNode | undefined,
  file: string,
  accept?: Accept,
): Extract<Expr, { kind: 'cmp' }> | undefined {
  const attr = token(n, 'attr');
  const op = token(n, 'op');
  const valueTok = token(n, 'value');
  if (!n || !attr || !op || !valueTok) return undefined;
  const unit = token(n, 'unit');
  if (unit) {
    const written = `${valueTok.image} ${unit.image}`;
    accept?.('error', 'unknown-unit', `unknown unit '${unit.image}' in '${written}'`, spanFromTo(valueTok, unit, file), unitHint(written));
    return undefined;
  }
  let value = literalValue(valueTok, file);
  if (!value) return undefined; // a bad quantity, already reported
  // `size == 0` needs no unit: zero bytes is zero in every unit.
  if (attr.image === 'size' && value.kind === 'number' && value.value === 0) value = { kind: 'size', bytes: 0, span: value.span };
  // `=` is kept as written so the validator can point at it; it never reaches an engine.
  return {
    kind: 'cmp',
    attr: attr.image as Attr,
    attrSpan: spanOf(attr, file),
    op: op.image as CmpOp,
    opSpan: spanOf(op, file),
    value,
    span: spanFromTo(firstToken(n) ?? attr, valueTok, file),
  };
}
