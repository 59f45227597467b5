// Value-level checks, pure: positivity, counts, absolute roots, glob syntax, cron and time
// zones, watermarks. Called while building the AST, where each value's span is at hand.
import { CronExpressionParser } from 'cron-parser';
import type { Span, Value } from './ast.js';
import type { Accept } from './diagnostics.js';

export function checkPositive(n: number, what: string, span: Span, accept: Accept): boolean {
  if (n > 0) return true;
  accept('error', 'non-positive', `'${what}' must be greater than zero`, span);
  return false;
}

/** Counts (files, concurrency): positive whole numbers. */
export function checkCount(n: number, what: string, span: Span, accept: Accept): boolean {
  if (!checkPositive(n, what, span, accept)) return false;
  if (Number.isInteger(n) && n <= Number.MAX_SAFE_INTEGER) return true;
  accept('error', 'invalid-value', `'${what}' must be a whole number`, span);
  return false;
}

export function checkRoot(root: string, span: Span, accept: Accept, what = 'root'): void {
  if (!root.startsWith('/')) {
    accept('error', 'relative-root', `${what} "${root}" is not an absolute path`, span, `write it from /, e.g. "/${root}"`);
  } else if (root.split('/').some((part) => part === '..' || part === '.')) {
    accept('error', 'relative-root', `${what} "${root}" contains '.' or '..'; write the plain absolute path`, span);
  }
}

/**
 * `backing` is bind-mounted onto the fileset's root: one root only, and neither may hold
 * the other (a bind onto a directory inside its own source, or a root hidden by it).
 */
export function checkBacking(backing: string, roots: string[], span: Span, accept: Accept): void {
  if (!backing.startsWith('/')) return; // reported by checkRoot
  if (roots.length !== 1) {
    accept('error', 'invalid-backing', `'backing' needs exactly one root (the fileset has ${roots.length}): the backing is mounted onto it`, span, 'split the fileset, one fileset per root');
    return;
  }
  const root = roots[0]!;
  const inside = (a: string, b: string) => b === '/' || a.startsWith(`${b}/`);
  if (backing === root) accept('error', 'invalid-backing', `backing "${backing}" is the root itself; it must be another directory, where the filesystem is mounted`, span);
  else if (inside(backing, root)) accept('error', 'invalid-backing', `backing "${backing}" is inside root "${root}"`, span, 'put it outside, e.g. beside the root under a 0700 directory');
  else if (inside(root, backing)) accept('error', 'invalid-backing', `root "${root}" is inside backing "${backing}"`, span, 'the root must be an empty directory outside the managed filesystem');
}

/** Unbalanced [] or {}, a trailing backslash or an empty pattern. */
export function checkGlob(glob: string, span: Span, accept: Accept): void {
  const problem = globProblem(glob);
  if (problem) accept('error', 'invalid-glob', `malformed glob ${JSON.stringify(glob)}: ${problem}`, span);
}

export function globProblem(glob: string): string | undefined {
  if (glob === '') return 'the pattern is empty';
  let braces = 0;
  let inBracket = false;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '\\') {
      if (i === glob.length - 1) return 'it ends with a lone backslash';
      i++;
    } else if (inBracket) {
      if (c === ']' && glob[i - 1] !== '[' && !(glob[i - 1] === '!' && glob[i - 2] === '[')) inBracket = false;
    } else if (c === '[') inBracket = true;
    else if (c === '{') braces++;
    else if (c === '}' && --braces < 0) return "'}' without a matching '{'";
  }
  if (inBracket) return "'[' is never closed";
  if (braces > 0) return "'{' is never closed";
  return undefined;
}

export function checkCron(expr: string, tz: string | undefined, span: Span, accept: Accept): void {
  const fields = expr.trim().split(/\s+/).filter(Boolean);
  if (!expr.trim().startsWith('@') && fields.length !== 5 && fields.length !== 6) {
    accept('error', 'invalid-cron', `invalid cron expression "${expr}": expected 5 or 6 fields, got ${fields.length}`, span);
    return;
  }
  try {
    CronExpressionParser.parse(expr, { tz: tz && isTimezone(tz) ? tz : 'UTC' });
  } catch (e) {
    accept('error', 'invalid-cron', `invalid cron expression "${expr}": ${(e as Error).message}`, span);
  }
}

export function isTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export function checkTimezone(tz: string, span: Span, accept: Accept): void {
  if (!isTimezone(tz)) accept('error', 'invalid-timezone', `unknown time zone "${tz}"`, span, 'use an IANA name such as "Europe/Paris" or "UTC"');
}

/** `when usage > HIGH until usage < LOW`: both within 0..100 and LOW below HIGH. */
export function checkWatermark(high: Value, low: Value, accept: Accept): boolean {
  let ok = true;
  for (const v of [high, low]) {
    if (v.kind === 'percent' && (v.value < 0 || v.value > 100)) {
      accept('error', 'invalid-watermark', `watermark ${v.value}% is outside 0-100%`, v.span);
      ok = false;
    }
  }
  if (ok && high.kind === 'percent' && low.kind === 'percent' && low.value >= high.value) {
    accept('error', 'invalid-watermark', `'until' (${low.value}%) must be below 'when' (${high.value}%)`, low.span);
    ok = false;
  }
  return ok;
}
