// Type checks for one comparison `ATTRIBUTE OP VALUE` or membership `ATTRIBUTE [not] in
// (V, ...)`: is the attribute known, does the operator suit its type, is each value of the
// attribute's type (with a unit when needed), each reported at its own span.
import type { CmpOp, Expr, FileState, Span, Value } from './ast.js';
import type { Accept } from './diagnostics.js';
import { describeValue } from './values.js';
import { checkGlob } from './check-values.js';
import { suggest } from './suggest.js';

type AttrType = 'size' | 'duration' | 'string' | 'number' | 'state' | 'bool';

export const ATTR_TYPES: Record<string, AttrType> = {
  size: 'size',
  last_access: 'duration',
  last_mod: 'duration',
  last_change: 'duration',
  path: 'string',
  name: 'string',
  owner: 'string',
  group: 'string',
  uid: 'number',
  gid: 'number',
  state: 'state',
  pinned: 'bool',
};

export const FILE_STATES: readonly FileState[] = ['resident', 'archived', 'dirty', 'released', 'partial'];

const ORDERED: readonly CmpOp[] = ['==', '!=', '<', '<=', '>', '>='];
const OPS: Record<AttrType, readonly CmpOp[]> = {
  size: ORDERED,
  duration: ORDERED,
  number: ORDERED,
  string: ['==', '!=', '~', '!~'],
  state: ['==', '!='],
  bool: ['==', '!='],
};

const EXAMPLE: Record<AttrType, string> = {
  size: 'a size such as 64KiB',
  duration: 'a duration such as 30d',
  string: 'a quoted string such as "*.log"',
  number: 'a plain number such as 1000',
  state: `a state (${FILE_STATES.join(', ')})`,
  bool: 'true or false',
};

/** What the checks may know about the rule's surroundings: the roots of its fileset. */
export interface ExprContext {
  roots?: readonly string[];
}

function attrType(c: { attr: string; attrSpan: Span }, accept: Accept): AttrType | undefined {
  const type = ATTR_TYPES[c.attr];
  if (!type) {
    const near = suggest(c.attr, Object.keys(ATTR_TYPES));
    const extra = (c.attr as string) === 'usage' ? "usage is only for watermarks: when usage > 85% until usage < 70%" : near ? `did you mean '${near}'?` : undefined;
    accept('error', 'unknown-attribute', `unknown attribute '${c.attr}'; attributes are ${Object.keys(ATTR_TYPES).join(', ')}`, c.attrSpan, extra);
  }
  return type;
}

/** Types a list can hold: `size in (...)` or `pinned in (...)` says nothing `==`/`<` cannot. */
const IN_TYPES: readonly AttrType[] = ['string', 'number', 'state'];

export function checkMembership(c: Extract<Expr, { kind: 'in' }>, accept: Accept, ctx: ExprContext = {}): void {
  const type = attrType(c, accept);
  if (!type) return;
  const op = c.negated ? 'not in' : 'in';
  if (!IN_TYPES.includes(type)) {
    accept('error', 'invalid-operator', `'${op}' does not apply to ${c.attr}; use ${OPS[type].join(' ')}`, c.opSpan);
    return;
  }
  // Elements of path and name are globs, as with `~`; the others compare with `==`.
  const as: CmpOp = c.attr === 'path' || c.attr === 'name' ? '~' : '==';
  for (const v of c.values) checkValue(c.attr, type, as, v, accept, ctx);
}

export function checkComparison(c: Extract<Expr, { kind: 'cmp' }>, accept: Accept, ctx: ExprContext = {}): void {
  const type = attrType(c, accept);
  if (!type) return;
  const opSpan = c.opSpan ?? c.attrSpan;
  if ((c.op as string) === '=') {
    accept('error', 'invalid-operator', "'=' is not a comparison; use '=='", opSpan);
    return;
  }
  if (!OPS[type].includes(c.op)) {
    accept('error', 'invalid-operator', `'${c.op}' does not apply to ${c.attr}; use ${OPS[type].join(' ')}`, opSpan);
    return;
  }
  checkValue(c.attr, type, c.op, c.value, accept, ctx);
}

function checkValue(attr: string, type: AttrType, op: CmpOp, v: Value, accept: Accept, ctx: ExprContext): void {
  const bad = (hint?: string) =>
    accept('error', 'type-mismatch', `${attr} compares with ${EXAMPLE[type]}, not ${describeValue(v)}`, v.span, hint);
  switch (type) {
    case 'size':
    case 'duration':
      if (v.kind === type) {
        if ((v.kind === 'size' ? v.bytes : v.ms) < 0) accept('error', 'invalid-value', `${attr} cannot be compared with a negative ${type}`, v.span);
        return;
      }
      if (v.kind === 'number') {
        const unit = type === 'size' ? 'B KB MB GB TB KiB MiB GiB TiB' : 's min h d w y';
        accept('error', 'missing-unit', `${attr} needs a unit on ${v.value}: ${unit}`, v.span, `e.g. ${v.value}${type === 'size' ? 'KiB' : 'd'}`);
        return;
      }
      return bad();
    case 'string':
      if (v.kind === 'string') {
        if (op === '~' || op === '!~') checkGlob(v.value, v.span, accept);
        checkNeverMatches(attr, v.value, v.span, accept, ctx);
        return;
      }
      if (v.kind === 'number' && (attr === 'owner' || attr === 'group')) return bad(`compare numeric ids with ${attr === 'owner' ? 'uid' : 'gid'}`);
      return bad(v.kind === 'ident' ? `write it in quotes: "${v.name}"` : undefined);
    case 'number':
      if (v.kind === 'number' && Number.isInteger(v.value) && v.value >= 0) return;
      if (v.kind === 'number') {
        accept('error', 'invalid-value', `${attr} is a whole number >= 0`, v.span);
        return;
      }
      return bad(v.kind === 'string' ? `compare names with ${attr === 'uid' ? 'owner' : 'group'}` : undefined);
    case 'state':
      if (v.kind === 'ident' && (FILE_STATES as readonly string[]).includes(v.name)) return;
      if (v.kind === 'ident') {
        const near = suggest(v.name, FILE_STATES);
        accept('error', 'unknown-state', `unknown state '${v.name}'; states are ${FILE_STATES.join(', ')}`, v.span, near ? `did you mean '${near}'?` : undefined);
        return;
      }
      return bad(v.kind === 'string' ? `write it without quotes: state == ${v.value}` : undefined);
    case 'bool':
      if (v.kind === 'bool') return;
      return bad();
  }
}

/** Patterns that cannot match what the attribute holds: a likely misunderstanding. */
function checkNeverMatches(attr: string, pattern: string, span: Span, accept: Accept, ctx: ExprContext): void {
  if (attr === 'path' && pattern.startsWith('/')) {
    accept('warning', 'never-matches', `path is relative to the fileset root, so ${JSON.stringify(pattern)} never matches`, span, absolutePathHint(pattern, ctx.roots ?? []));
  } else if (attr === 'name' && pattern.includes('/')) {
    accept('warning', 'never-matches', `name is the last path component and holds no '/', so ${JSON.stringify(pattern)} never matches`, span, 'use path ~ for patterns with directories');
  }
}

/** `/scratch/projects/**` under root `/scratch` -> `projects/**`; else drop the leading '/'. */
function absolutePathHint(pattern: string, roots: readonly string[]): string {
  // The longest root first: with roots /a and /a/b, /a/b/x is x under /a/b.
  for (const root of [...roots].sort((a, b) => b.length - a.length)) {
    const base = root.endsWith('/') ? root : root + '/';
    if (root === '/' || !pattern.startsWith(base)) continue;
    const rel = pattern.slice(base.length).replace(/^\/+/, '');
    if (rel !== '') return `write it relative to the root ${JSON.stringify(root)}: ${JSON.stringify(rel)}`;
  }
  return `drop the leading '/': ${JSON.stringify(pattern.replace(/^\/+/, ''))}`;
}
