// Literal tokens -> typed values (sizes in bytes, durations in ms), spans from tokens, and
// the reverse formatting the printer uses. Pure.
import type { IToken } from 'chevrotain';
import type { Span, Value } from './ast.js';

export const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
};

const DAY = 86_400_000;
export const DURATION_UNITS: Record<string, number> = { s: 1000, min: 60_000, h: 3_600_000, d: DAY, w: 7 * DAY, y: 365 * DAY };

/** Words accepted after a space (`30 days`); a year is 365 days. No month: it has no fixed length. */
const DURATION_WORDS: Record<string, string> = {
  second: 's', seconds: 's', sec: 's', secs: 's',
  minute: 'min', minutes: 'min', mins: 'min',
  hour: 'h', hours: 'h', hr: 'h', hrs: 'h',
  day: 'd', days: 'd', week: 'w', weeks: 'w', year: 'y', years: 'y',
};

/** Span of one token; tokens inserted by error recovery have no position and get `fallback`. */
export function spanOf(t: IToken, file: string, fallback?: Span): Span {
  if (!Number.isFinite(t.startLine) || !Number.isFinite(t.startColumn)) {
    return fallback ?? { file, line: 1, col: 1, length: 1 };
  }
  return { file, line: t.startLine!, col: t.startColumn!, length: Math.max(1, t.image.length) };
}

/** From the start of `a` to the end of `b` when both sit on one line, else `a` alone. */
export function spanFromTo(a: IToken, b: IToken | undefined, file: string): Span {
  const s = spanOf(a, file);
  if (!b || b.startLine !== a.startLine || !Number.isFinite(b.endOffset) || b.endOffset! < a.startOffset) return s;
  return { ...s, length: b.endOffset! - a.startOffset + 1 };
}

export function unescapeString(image: string): string {
  const body = image.endsWith('"') && image.length >= 2 ? image.slice(1, -1) : image.slice(1);
  return body.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
}

const QTY = /^(-?\d+(?:\.\d+)?)[ \t]*([A-Za-z%]*)$/;

/** A typed value, or undefined for tokens that are no value (BadQuantity is reported by the lexer step). */
export function literalValue(t: IToken, file: string): Value | undefined {
  const span = spanOf(t, file);
  switch (t.tokenType.name) {
    case 'String':
    case 'UnterminatedString':
      return { kind: 'string', value: unescapeString(t.image), span };
    case 'Identifier':
      return { kind: 'ident', name: t.image, span };
    case 'Kw_true':
      return { kind: 'bool', value: true, span };
    case 'Kw_false':
      return { kind: 'bool', value: false, span };
  }
  if (t.tokenType.name.startsWith('Kw_')) return { kind: 'ident', name: t.image, span }; // `owner == root`
  const m = QTY.exec(t.image);
  if (!m) return undefined;
  const n = Number(m[1]);
  const written = m[2] ?? '';
  const unit = DURATION_WORDS[written] ?? written;
  switch (t.tokenType.name) {
    case 'Number':
      return { kind: 'number', value: n, span };
    case 'Percent':
      return { kind: 'percent', value: n, span };
    case 'Size':
      return { kind: 'size', bytes: Math.round(n * SIZE_UNITS[unit]!), span };
    case 'Duration':
      return { kind: 'duration', ms: Math.round(n * DURATION_UNITS[unit]!), span };
  }
  return undefined;
}

/** "a size (4MiB)" — for type-mismatch messages. */
export function describeValue(v: Value): string {
  switch (v.kind) {
    case 'size':
      return `a size (${formatSize(v.bytes)})`;
    case 'duration':
      return `a duration (${formatDuration(v.ms)})`;
    case 'percent':
      return `a percentage (${v.value}%)`;
    case 'number':
      return `a plain number (${v.value})`;
    case 'string':
      return `a string (${JSON.stringify(v.value)})`;
    case 'ident':
      return `a bare word (${v.name})`;
    case 'bool':
      return `a boolean (${v.value})`;
  }
}

/** Hint for `5m`, `10kb`, `3days`, `2 months`, `1 gigs`: the unit the user probably meant. */
export function unitHint(image: string): string {
  const m = /^(-?\d+(?:\.\d+)?)[ \t]*([A-Za-z_][A-Za-z0-9_]*)$/.exec(image);
  const unit = m?.[2] ?? '';
  const lower = unit.toLowerCase();
  if (/^(mo|mos|mons?|months?)$/.test(lower)) {
    const n = Number(m?.[1] ?? '1');
    return `a month has no fixed length; write days or weeks, e.g. ${formatNumber(n * 30)}d or ${formatNumber(n * 4)}w`;
  }
  const guesses: Record<string, string> = {
    m: 'min',
    mn: 'min',
    mins: 'min',
    minute: 'min',
    minutes: 'min',
    sec: 's',
    secs: 's',
    second: 's',
    seconds: 's',
    hr: 'h',
    hrs: 'h',
    hour: 'h',
    hours: 'h',
    day: 'd',
    days: 'd',
    week: 'w',
    weeks: 'w',
    year: 'y',
    years: 'y',
    ms: 's',
    wk: 'w',
    wks: 'w',
    yr: 'y',
    yrs: 'y',
    bytes: 'B',
    byte: 'B',
    percent: '%',
    pct: '%',
  };
  const size = Object.keys(SIZE_UNITS).find((u) => u.toLowerCase() === lower || u.toLowerCase() === lower + 'b');
  const better = guesses[lower] ?? size ?? suggestUnit(lower);
  const units = 'sizes: B KB MB GB TB KiB MiB GiB TiB; durations: s min h d w y (or 30 days, 2 weeks); percentages: 85%';
  return better ? `did you mean ${m?.[1]}${better}? (${units})` : units;
}

/** `1gigs` -> GB, `5 dayz` -> d: a prefix of a size or duration word. */
function suggestUnit(lower: string): string | undefined {
  if (lower.length < 2) return undefined;
  const words: [string, string][] = [['giga', 'GB'], ['mega', 'MB'], ['kilo', 'KB'], ['tera', 'TB'], ['gig', 'GB'], ['meg', 'MB'], ['day', 'd'], ['week', 'w'], ['hour', 'h'], ['minute', 'min'], ['second', 's'], ['year', 'y']];
  return words.find(([w]) => lower.startsWith(w.slice(0, Math.min(w.length, Math.max(3, lower.length - 1)))))?.[1];
}

const formatNumber = (n: number): string => String(Math.round(n * 1000) / 1000);

/** Largest unit that divides exactly: 4194304 -> 4MiB, 2000000 -> 2MB, 1500 -> 1500B. */
export function formatSize(bytes: number): string {
  if (bytes === 0) return '0B';
  for (const u of ['TiB', 'TB', 'GiB', 'GB', 'MiB', 'MB', 'KiB', 'KB']) {
    const f = SIZE_UNITS[u]!;
    if (Number.isInteger(bytes / f) && Math.abs(bytes) >= f) return `${bytes / f}${u}`;
  }
  return `${bytes}B`;
}

export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  for (const u of ['y', 'w', 'd', 'h', 'min', 's']) {
    const f = DURATION_UNITS[u]!;
    if (Number.isInteger(ms / f) && Math.abs(ms) >= f) return `${ms / f}${u}`;
  }
  return `${ms / 1000}s`;
}

export function formatValue(v: Value): string {
  switch (v.kind) {
    case 'size':
      return formatSize(v.bytes);
    case 'duration':
      return formatDuration(v.ms);
    case 'percent':
      return `${v.value}%`;
    case 'number':
      return String(v.value);
    case 'string':
      return quote(v.value);
    case 'ident':
      return v.name;
    case 'bool':
      return String(v.value);
  }
}

export const quote = (s: string): string =>
  '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r') + '"';
