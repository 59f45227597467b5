// Rule evaluation: pure over FileFacts and `now`. Rules are tried in order and the
// first whose condition holds decides the file; no match leaves it alone. `attr in (...)`
// holds when any element matches: globs for path and name (as `~`), equality otherwise.
// `explain` evaluates every rule and every comparison, for `tier explain`.
import { globMatcher as compile } from '../walk/glob.js';
import type { Attr, CmpOp, Expr, PolicyDecl, Rule, Span, Value } from '../dsl/ast.js';
import type { FileFacts } from './facts.js';

type Scalar = number | string | boolean;

const matchers = new Map<string, (s: string) => boolean>();
function globMatcher(glob: string): (s: string) => boolean {
  let m = matchers.get(glob);
  if (!m) {
    m = compile(glob);
    matchers.set(glob, m);
  }
  return m;
}

/** The attribute's value for this file: ages in ms, sizes in bytes, names as strings. */
export function attrValue(f: FileFacts, attr: Attr, now: number): Scalar {
  switch (attr) {
    case 'size':
      return f.size;
    case 'last_access':
      return now - f.atimeMs;
    case 'last_mod':
      return now - f.mtimeMs;
    case 'last_change':
      return now - f.ctimeMs;
    case 'path':
      return f.path;
    case 'name':
      return f.name;
    case 'owner':
      return f.owner;
    case 'group':
      return f.group;
    case 'uid':
      return f.uid;
    case 'gid':
      return f.gid;
    case 'state':
      return f.state;
    case 'pinned':
      return f.pinned;
  }
}

function literal(v: Value): Scalar {
  switch (v.kind) {
    case 'size':
      return v.bytes;
    case 'duration':
      return v.ms;
    case 'percent':
    case 'number':
      return v.value;
    case 'string':
      return v.value;
    case 'bool':
      return v.value;
    case 'ident':
      // true/false are idents in some positions; state names stay strings.
      if (v.name === 'true') return true;
      if (v.name === 'false') return false;
      return v.name;
  }
}

export function compare(actual: Scalar, op: CmpOp, expected: Scalar): boolean {
  switch (op) {
    case '~':
      return globMatcher(String(expected))(String(actual));
    case '!~':
      return !globMatcher(String(expected))(String(actual));
    case '==':
      return actual === expected;
    case '!=':
      return actual !== expected;
    case '<':
      return actual < expected;
    case '<=':
      return actual <= expected;
    case '>':
      return actual > expected;
    case '>=':
      return actual >= expected;
  }
}

/** `attr in (...)`: path and name elements are globs, the others compare for equality. */
export function member(actual: Scalar, attr: Attr, expected: readonly Scalar[]): boolean {
  const op: CmpOp = attr === 'path' || attr === 'name' ? '~' : '==';
  return expected.some((x) => compare(actual, op, x));
}

export function evalExpr(e: Expr, f: FileFacts, now: number): boolean {
  switch (e.kind) {
    case 'true':
      return true;
    case 'and':
      return evalExpr(e.left, f, now) && evalExpr(e.right, f, now);
    case 'or':
      return evalExpr(e.left, f, now) || evalExpr(e.right, f, now);
    case 'not':
      return !evalExpr(e.operand, f, now);
    case 'cmp':
      return compare(attrValue(f, e.attr, now), e.op, literal(e.value));
    case 'in':
      return member(attrValue(f, e.attr, now), e.attr, e.values.map(literal)) !== e.negated;
  }
}

type Pred = (f: FileFacts, now: number) => boolean;

/** The attribute's value as a function (attrValue's switch taken once, not per file). */
function getter(attr: Attr): (f: FileFacts, now: number) => Scalar {
  switch (attr) {
    case 'last_access':
      return (f, now) => now - f.atimeMs;
    case 'last_mod':
      return (f, now) => now - f.mtimeMs;
    case 'last_change':
      return (f, now) => now - f.ctimeMs;
    case 'size':
      return (f) => f.size;
    case 'path':
      return (f) => f.path;
    case 'name':
      return (f) => f.name;
    case 'owner':
      return (f) => f.owner;
    case 'group':
      return (f) => f.group;
    case 'uid':
      return (f) => f.uid;
    case 'gid':
      return (f) => f.gid;
    case 'state':
      return (f) => f.state;
    case 'pinned':
      return (f) => f.pinned;
  }
}

/** evalExpr as closures: literals, globs and attributes resolved once per policy. */
function compileExpr(e: Expr): Pred {
  switch (e.kind) {
    case 'true':
      return () => true;
    case 'and': {
      const l = compileExpr(e.left);
      const r = compileExpr(e.right);
      return (f, now) => l(f, now) && r(f, now);
    }
    case 'or': {
      const l = compileExpr(e.left);
      const r = compileExpr(e.right);
      return (f, now) => l(f, now) || r(f, now);
    }
    case 'not': {
      const o = compileExpr(e.operand);
      return (f, now) => !o(f, now);
    }
    case 'cmp': {
      const get = getter(e.attr);
      const x = literal(e.value);
      switch (e.op) {
        case '~': {
          const m = globMatcher(String(x));
          return (f, now) => m(String(get(f, now)));
        }
        case '!~': {
          const m = globMatcher(String(x));
          return (f, now) => !m(String(get(f, now)));
        }
        case '==':
          return (f, now) => get(f, now) === x;
        case '!=':
          return (f, now) => get(f, now) !== x;
        case '<':
          return (f, now) => get(f, now) < x;
        case '<=':
          return (f, now) => get(f, now) <= x;
        case '>':
          return (f, now) => get(f, now) > x;
        case '>=':
          return (f, now) => get(f, now) >= x;
      }
      break;
    }
    case 'in': {
      const get = getter(e.attr);
      const xs = e.values.map(literal);
      const attr = e.attr;
      const negated = e.negated;
      return (f, now) => member(get(f, now), attr, xs) !== negated;
    }
  }
  return (f, now) => evalExpr(e, f, now);
}

// Compiled once per rule list (a reload parses new ones; the old ones are collected).
const compiled = new WeakMap<readonly Rule[], Pred[]>();

/** The first rule whose condition holds, or null (evalExpr's answer, compiled: a scan asks it per file). */
export function evaluate(policy: PolicyDecl, f: FileFacts, now: number): Rule | null {
  let preds = compiled.get(policy.rules);
  if (!preds || preds.length !== policy.rules.length) {
    preds = policy.rules.map((r) => compileExpr(r.cond));
    compiled.set(policy.rules, preds);
  }
  for (let i = 0; i < preds.length; i++) if (preds[i]!(f, now)) return policy.rules[i]!;
  return null;
}

export interface CondTrace {
  span: Span;
  attr: Attr;
  op: CmpOp | 'in' | 'not in';
  /** A list for `in` / `not in`. */
  expected: Scalar | Scalar[];
  actual: Scalar;
  result: boolean;
}

export interface RuleTrace {
  rule: string;
  span: Span;
  matched: boolean;
  /** Every comparison in the condition, in source order, each evaluated. */
  conditions: CondTrace[];
}

export interface Explanation {
  decidedBy: string | null;
  rules: RuleTrace[];
}

function traceExpr(e: Expr, f: FileFacts, now: number, out: CondTrace[]): boolean {
  switch (e.kind) {
    case 'true':
      return true;
    case 'and': {
      const l = traceExpr(e.left, f, now, out);
      const r = traceExpr(e.right, f, now, out);
      return l && r;
    }
    case 'or': {
      const l = traceExpr(e.left, f, now, out);
      const r = traceExpr(e.right, f, now, out);
      return l || r;
    }
    case 'not':
      return !traceExpr(e.operand, f, now, out);
    case 'cmp': {
      const actual = attrValue(f, e.attr, now);
      const expected = literal(e.value);
      const result = compare(actual, e.op, expected);
      out.push({ span: e.span, attr: e.attr, op: e.op, expected, actual, result });
      return result;
    }
    case 'in': {
      const actual = attrValue(f, e.attr, now);
      const expected = e.values.map(literal);
      const result = member(actual, e.attr, expected) !== e.negated;
      out.push({ span: e.span, attr: e.attr, op: e.negated ? 'not in' : 'in', expected, actual, result });
      return result;
    }
  }
}

/** Every rule with every comparison's value; decidedBy is what evaluate() would pick. */
export function explain(policy: PolicyDecl, f: FileFacts, now: number): Explanation {
  let decidedBy: string | null = null;
  const rules = policy.rules.map((rule) => {
    const conditions: CondTrace[] = [];
    const matched = traceExpr(rule.cond, f, now, conditions);
    if (matched && decidedBy === null) decidedBy = rule.name;
    return { rule: rule.name, span: rule.span, matched, conditions };
  });
  return { decidedBy, rules };
}
