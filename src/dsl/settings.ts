// Typed reading of generic `key value, value...` settings. Each reader reports a wrong
// number of values, a wrong type or a missing unit, and returns undefined then.
import type { CstNode } from 'chevrotain';
import type { Span, Value } from './ast.js';
import type { Accept } from './diagnostics.js';
import { firstToken, lastToken, node, nodes, token, tokens } from './cst.js';
import { suggest } from './suggest.js';
import { describeValue, literalValue, spanFromTo, spanOf, unitHint } from './values.js';
import { checkPositive, checkCount } from './check-values.js';

export interface Setting {
  key: string;
  keySpan: Span;
  values: Value[];
  span: Span;
  /** Some value was unreadable (`4 mb`) and is already reported: not also "missing". */
  broken?: boolean;
}

export function settingOf(n: CstNode, file: string, accept?: Accept): Setting | undefined {
  const key = token(n, 'key');
  if (!key) return undefined;
  const vs = node(n, 'values');
  const lits = tokens(vs, 'Literal');
  const unit = token(vs, 'unit');
  const last = lits[lits.length - 1];
  if (unit && last) {
    const written = `${last.image} ${unit.image}`;
    accept?.('error', 'unknown-unit', `unknown unit '${unit.image}' in '${written}'`, spanFromTo(last, unit, file), unitHint(written));
  }
  const read = lits.map((t, i) => (unit && i === lits.length - 1 ? undefined : literalValue(t, file)));
  const values = read.filter((v): v is Value => v !== undefined);
  const s: Setting = { key: key.image, keySpan: spanOf(key, file), values, span: spanFromTo(key, lastToken(n), file) };
  if (values.length < read.length) s.broken = true;
  return s;
}

const EXAMPLE: Record<string, string> = {
  size: '4MiB',
  duration: '30s',
  count: '8',
  string: '"text"',
  bool: 'true',
};

function one(s: Setting, kind: keyof typeof EXAMPLE, accept: Accept): Value | undefined {
  if (s.broken) return undefined;
  if (s.values.length === 0) {
    accept('error', 'missing-value', `'${s.key}' needs a value, e.g. ${s.key} ${EXAMPLE[kind]}`, s.keySpan);
    return undefined;
  }
  if (s.values.length > 1) {
    accept('error', 'invalid-value', `'${s.key}' takes one value, not ${s.values.length}`, s.values[1]!.span);
    return undefined;
  }
  return s.values[0];
}

export function readString(s: Setting, accept: Accept): string | undefined {
  const v = one(s, 'string', accept);
  if (!v) return undefined;
  if (v.kind === 'string') return v.value;
  const hint = v.kind === 'ident' ? `write it in quotes: ${s.key} "${v.name}"` : undefined;
  accept('error', 'type-mismatch', `'${s.key}' takes a string, not ${describeValue(v)}`, v.span, hint);
  return undefined;
}

export function readStrings(s: Setting, accept: Accept): { value: string; span: Span }[] {
  if (s.values.length === 0 && !s.broken) {
    accept('error', 'missing-value', `'${s.key}' needs one or more strings, e.g. ${s.key} "/srv/data"`, s.keySpan);
    return [];
  }
  const out: { value: string; span: Span }[] = [];
  for (const v of s.values) {
    if (v.kind === 'string') out.push({ value: v.value, span: v.span });
    else accept('error', 'type-mismatch', `'${s.key}' takes strings, not ${describeValue(v)}`, v.span);
  }
  return out;
}

/** Sizes (bytes) and durations (ms): a bare number is a missing unit, and the value must be > 0. */
export function readQuantity(s: Setting, kind: 'size' | 'duration', accept: Accept): number | undefined {
  const v = one(s, kind, accept);
  if (!v) return undefined;
  if (v.kind === 'number') {
    accept(
      'error',
      'missing-unit',
      `'${s.key}' needs a unit: ${kind === 'size' ? 'B KB MB GB TB KiB MiB GiB TiB' : 's min h d w y'}`,
      v.span,
      `e.g. ${s.key} ${v.value}${kind === 'size' ? 'MiB' : kind === 'duration' ? 's' : ''}`,
    );
    return undefined;
  }
  if (v.kind !== kind) {
    accept('error', 'type-mismatch', `'${s.key}' takes ${kind === 'size' ? 'a size' : 'a duration'}, not ${describeValue(v)}`, v.span);
    return undefined;
  }
  const n = v.kind === 'size' ? v.bytes : v.ms;
  return checkPositive(n, s.key, v.span, accept) ? n : undefined;
}

export function readCount(s: Setting, accept: Accept): number | undefined {
  const v = one(s, 'count', accept);
  if (!v) return undefined;
  if (v.kind !== 'number') {
    accept('error', 'type-mismatch', `'${s.key}' takes a plain number, not ${describeValue(v)}`, v.span);
    return undefined;
  }
  return checkCount(v.value, s.key, v.span, accept) ? v.value : undefined;
}

export function readBool(s: Setting, accept: Accept): boolean | undefined {
  const v = one(s, 'bool', accept);
  if (!v) return undefined;
  if (v.kind === 'bool') return v.value;
  accept('error', 'type-mismatch', `'${s.key}' takes true or false, not ${describeValue(v)}`, v.span);
  return undefined;
}

export function readEnum<T extends string>(s: Setting, allowed: readonly T[], accept: Accept): T | undefined {
  const v = one(s, 'string', accept);
  if (!v) return undefined;
  const word = v.kind === 'ident' ? v.name : v.kind === 'string' ? v.value : undefined;
  if (word !== undefined && (allowed as readonly string[]).includes(word)) return word as T;
  accept('error', 'invalid-value', `'${s.key}' must be one of ${allowed.join(', ')}`, v.span);
  return undefined;
}

export function readFlag(s: Setting, accept: Accept): boolean {
  if (s.values.length > 0) {
    accept('error', 'invalid-value', `'${s.key}' takes no value here`, s.values[0]!.span);
  }
  return true;
}

/** Keys that may repeat in a block: their values add up. */
const LIST_KEYS = new Set(['root', 'include', 'exclude', 'whole_file_for']);

/** The settings of a block with unknown, misplaced and repeated keys reported. */
export function blockSettings(block: CstNode | undefined, what: string, allowed: readonly string[], file: string, accept: Accept): Setting[] {
  const out: Setting[] = [];
  const seen = new Map<string, Span>();
  const list = `${what} options: ${allowed.join(', ')}`;
  for (const n of [...nodes(block, 'setting'), ...nodes(block, 'unknownSetting')]) {
    const s = settingOf(n, file, accept);
    if (!s) continue;
    if (!allowed.includes(s.key)) {
      const near = suggest(s.key, allowed);
      const msg = n.name === 'unknownSetting' ? `unknown ${what} option '${s.key}'` : `'${s.key}' is not a ${what} option`;
      accept('error', 'unknown-option', `${msg}; ${list}`, s.keySpan, near ? `did you mean '${near}'?` : undefined);
      continue;
    }
    const first = seen.get(s.key);
    if (first && !LIST_KEYS.has(s.key)) {
      accept('error', 'duplicate-option', `'${s.key}' is already set at line ${first.line}`, s.keySpan);
      continue;
    }
    seen.set(s.key, s.keySpan);
    out.push(s);
  }
  if (what !== 'policy') {
    for (const clause of ['whenClause', 'orderClause', 'limitClause', 'ruleDecl']) {
      for (const c of nodes(block, clause)) {
        const t = firstToken(c);
        if (t) accept('error', 'unknown-option', `'${t.image}' belongs in a policy block, not in a ${what}; ${list}`, spanOf(t, file));
      }
    }
  }
  return out;
}
