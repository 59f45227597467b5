// Diagnostics: what every stage (lexer, parser, AST builder, validator) reports, and the
// two ways to show them: compiler-style text with the source line and a caret underline,
// or plain JSON objects for tools.
import type { Span } from './ast.js';

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  severity: Severity;
  /** Stable kebab-case code, listed in docs/policy-language.md. */
  code: string;
  message: string;
  span: Span;
  /** Optional suggestion shown under the underline ("did you mean ...?"). */
  hint?: string;
}

/** The sink each check writes to; checks never throw and never return diagnostics. */
export type Accept = (severity: Severity, code: string, message: string, span: Span, hint?: string) => void;

export function collector(into: Diagnostic[]): Accept {
  return (severity, code, message, span, hint) => {
    const d: Diagnostic = { severity, code, message, span };
    if (hint !== undefined) d.hint = hint;
    into.push(d);
  };
}

export const hasErrors = (ds: readonly Diagnostic[]): boolean => ds.some((d) => d.severity === 'error');

/** Sorted by position, errors before warnings at the same spot; stable otherwise. */
export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return ds
    .map((d, i) => ({ d, i }))
    .sort((a, b) => a.d.span.line - b.d.span.line || a.d.span.col - b.d.span.col || a.i - b.i)
    .map(({ d }) => d);
}

const MAX_SHOWN_LINE = 240; // a minified one-line file must not flood the terminal

/**
 * `FILE:LINE:COL: error[code]: message`, then the source line and a caret underline
 * (tabs kept so the carets line up), then an optional `= help:` line.
 */
export function formatDiagnostic(d: Diagnostic, source?: string): string {
  const { file, line, col } = d.span;
  const head = `${file}:${line}:${col}: ${d.severity}[${d.code}]: ${d.message}`;
  const out = [head];
  const text = source === undefined ? undefined : sourceLine(source, line);
  if (text !== undefined) {
    const gutter = String(line).length;
    const pad = ' '.repeat(gutter);
    const start = Math.max(0, col - 1);
    const shown = text.length > MAX_SHOWN_LINE ? text.slice(0, MAX_SHOWN_LINE) + ' ...' : text;
    const lead = text.slice(0, Math.min(start, MAX_SHOWN_LINE)).replace(/[^\t]/g, ' ');
    const width = Math.max(1, Math.min(d.span.length, Math.max(1, text.length - start), MAX_SHOWN_LINE));
    out.push(`${line} | ${shown}`);
    out.push(`${pad} | ${lead}${'^'.repeat(width)}`);
  }
  if (d.hint) out.push(`${' '.repeat(String(line).length)} = help: ${d.hint}`);
  return out.join('\n');
}

function sourceLine(source: string, line: number): string | undefined {
  if (!Number.isFinite(line) || line < 1) return undefined;
  let start = 0;
  for (let n = 1; n < line; n++) {
    const nl = source.indexOf('\n', start);
    if (nl < 0) return undefined;
    start = nl + 1;
  }
  const end = source.indexOf('\n', start);
  return source.slice(start, end < 0 ? undefined : end).replace(/\r$/, '');
}

/** The JSON form: flat objects, stable field names. */
export function diagnosticToJSON(d: Diagnostic): Record<string, unknown> {
  const o: Record<string, unknown> = {
    file: d.span.file,
    line: d.span.line,
    col: d.span.col,
    length: d.span.length,
    severity: d.severity,
    code: d.code,
    message: d.message,
  };
  if (d.hint) o.hint = d.hint;
  return o;
}
