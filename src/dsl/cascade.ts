// One mistake, one diagnostic. Once a rule breaks (a syntax error, or a character or string
// the lexer could not read), the parser's recovery reads the rest of that rule as something
// else, and every guess it makes is another error: `size > 1 gigs -> release to nas` used to
// give "expected '->'", "unknown action 'gigs'", "unknown policy option 'release'", ...
// So after the first breaking error in a rule, nothing else in that rule is reported.
// Mistakes before it, and in other rules, still are. The same holds for the other clauses
// of a policy that hold expressions: `when`, `order`, `limit`.
//
// A clause's region runs from its keyword to the next `rule`, the `}` closing the policy,
// or a clause or option keyword starting a line. An error AT that end token is about the
// unfinished clause (a `rule` keyword is never wrong by itself), so the end belongs to it,
// for syntax errors only.
import { tokenMatcher, type IToken } from './cst.js';
import type { Diagnostic } from './diagnostics.js';
import { LCurly, Limit, OptionKey, Order, Policy, RCurly, Rule, When } from './tokens.js';

interface Pos {
  line: number;
  col: number;
}

export interface RuleRegion {
  start: Pos; // the clause keyword, excluded
  end?: Pos; // the token ending the rule, included for syntax errors; absent: end of input
}

const BREAKING = new Set(['syntax', 'unexpected-character', 'unterminated-string']);

const pos = (t: IToken): Pos | undefined =>
  Number.isFinite(t.startLine) && Number.isFinite(t.startColumn) ? { line: t.startLine!, col: t.startColumn! } : undefined;

const cmp = (a: Pos, b: Pos): number => a.line - b.line || a.col - b.col;

const CLAUSES = [Rule, When, Order, Limit];
const startsClause = (t: IToken) => CLAUSES.some((c) => tokenMatcher(t, c));

/** The rule (and clause) regions of one policy declaration's tokens. */
export function ruleRegions(tokens: readonly IToken[]): RuleRegion[] {
  if (!tokens[0] || !tokenMatcher(tokens[0], Policy)) return [];
  const out: RuleRegion[] = [];
  let open: RuleRegion | undefined;
  let depth = 0;
  let prevLine = 0;
  for (const t of tokens) {
    const p = pos(t);
    const firstOnLine = p !== undefined && p.line !== prevLine;
    if (p) prevLine = p.line;
    if (tokenMatcher(t, LCurly)) depth++;
    const closes = tokenMatcher(t, RCurly) && depth === 1;
    if (tokenMatcher(t, RCurly)) depth--;
    const ends =
      closes ||
      (depth === 1 && tokenMatcher(t, Rule)) ||
      (depth === 1 && firstOnLine && (tokenMatcher(t, OptionKey) || tokenMatcher(t, When) || tokenMatcher(t, Order) || tokenMatcher(t, Limit)));
    if (open && ends && p) {
      open.end = p;
      open = undefined;
    }
    if (depth === 1 && p && (tokenMatcher(t, Rule) || (firstOnLine && startsClause(t)))) out.push((open = { start: p }));
  }
  return out;
}

/**
 * Drops what follows the first breaking error of each rule, within that rule. Both lists are
 * sorted by position, so one walk does it (a file of 30k broken rules stays linear).
 */
export function dropCascades(ds: Diagnostic[], regions: readonly RuleRegion[]): Diagnostic[] {
  if (regions.length === 0) return ds;
  const out: Diagnostic[] = [];
  let ri = 0;
  let broken = -1; // index of the region whose breaker has been seen
  for (const d of ds) {
    while (ri < regions.length && regions[ri]!.end && cmp(d.span, regions[ri]!.end!) > 0) ri++;
    const r = regions[ri];
    const c = r?.end ? cmp(d.span, r.end) : -1;
    const inside = r !== undefined && cmp(d.span, r.start) > 0 && (c < 0 || (c === 0 && d.code === 'syntax'));
    if (!inside) out.push(d);
    else if (broken !== ri) {
      if (BREAKING.has(d.code)) broken = ri;
      out.push(d);
    }
  }
  return out;
}
