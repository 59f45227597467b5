// The policy language's library API: text in, AST + diagnostics out, never an exception.
//
//   const { policy, diagnostics } = parsePolicy(text, 'media.hsmpolicy');
//
// `policy` is null only when the text could not be parsed (lexer or syntax errors); with
// semantic errors it is still returned for tools, and callers that act on it must refuse
// to run when `hasErrors(diagnostics)`.
import { EOF, type IToken } from './cst.js';
import type { PolicyFile, Span } from './ast.js';
import { collector, hasErrors, sortDiagnostics, type Diagnostic } from './diagnostics.js';
import { policyLexer, LParen, RParen, UnterminatedString, BadQuantity, And, Or, Not, In, Star, Match, NotMatch, Comma } from './tokens.js';
import { parseDeclaration } from './parser.js';
import { segment } from './segment.js';
import { dropCascades, ruleRegions, type RuleRegion } from './cascade.js';
import { describeToken } from './parse-messages.js';
import { fileToAst } from './to-ast.js';
import { validatePolicyFile } from './validate.js';
import { spanOf, unitHint } from './values.js';

export type { Diagnostic, Severity, Accept } from './diagnostics.js';
export { formatDiagnostic, diagnosticToJSON, hasErrors } from './diagnostics.js';
export { printPolicy } from './print.js';

/** Larger inputs are refused outright: a policy is a few kilobytes. */
export const MAX_POLICY_CHARS = 4 * 1024 * 1024;
/** Parenthesis depth past which groups are flattened (and reported) before parsing. */
export const MAX_NESTING = 64;
/** Diagnostics past this count are summarised in one. */
export const MAX_DIAGNOSTICS = 100;

export interface ParseResult {
  policy: PolicyFile | null;
  diagnostics: Diagnostic[];
}

export function parsePolicy(text: string, file: string): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const accept = collector(diagnostics);
  let policy: PolicyFile | null = null;
  const regions: RuleRegion[] = [];
  try {
    if (text.length > MAX_POLICY_CHARS) {
      accept('error', 'file-too-large', `policy file is ${text.length} characters; the limit is ${MAX_POLICY_CHARS}`, at(file, 1, 1));
      return { policy: null, diagnostics };
    }
    const lexed = policyLexer.tokenize(text);
    for (const e of lexed.errors) {
      const ch = text.slice(e.offset, e.offset + 1);
      accept('error', 'unexpected-character', `unexpected character ${printable(ch)}`, at(file, e.line ?? 1, e.column ?? 1, e.length));
    }
    for (const t of lexed.tokens) {
      if (t.tokenType === UnterminatedString) accept('error', 'unterminated-string', 'string is not closed before the end of the line', spanOf(t, file));
      if (t.tokenType === BadQuantity) accept('error', 'unknown-unit', `unknown unit in '${t.image}'`, spanOf(t, file), unitHint(t.image));
      if (UPPER_KEYWORDS.has(t.tokenType) && t.image !== t.image.toLowerCase()) {
        const word = t.image.toLowerCase();
        accept('error', 'keyword-case', `keywords are lower case: '${t.image}' is written '${word}'`, spanOf(t, file), `write '${word}'`);
      }
    }
    const tokens = flattenDeepParens(lexed.tokens, file, accept);
    const { decls, junk } = segment(tokens);
    for (const run of junk) {
      const t = run[0]!;
      accept('error', 'syntax', `unexpected ${describeToken(t)}; expected 'tier', 'fileset', 'policy' or 'recall'`, spanOf(t, file));
    }
    for (const d of decls) regions.push(...ruleRegions(d.tokens));
    const csts = decls.map((d) => {
      const { cst, errors } = parseDeclaration(d.tokens);
      for (const e of errors) {
        // The segment's end is not the file's end: name the token that really follows.
        const msg = d.next && e.token.tokenType === EOF ? e.message.replace('the end of the file', describeToken(d.next)) : e.message;
        const prev = (e as { previousToken?: IToken }).previousToken;
        accept('error', 'syntax', msg, errorSpan(e.token, prev, file), bareGlobHint(e.token, prev));
      }
      return cst;
    });
    const syntaxOk = !hasErrors(diagnostics);
    const declared = { tiers: new Set<string>(), filesets: new Set<string>() };
    const pf = fileToAst(csts, file, accept, declared);
    validatePolicyFile(pf, accept, declared);
    if (syntaxOk && pf.tiers.length + pf.filesets.length + pf.policies.length === 0 && !pf.recall.span) {
      accept('warning', 'empty-file', 'the file defines no tier, fileset or policy', at(file, 1, 1));
    }
    policy = syntaxOk ? pf : null;
  } catch (e) {
    // A bug, never the user's fault; still a diagnostic, so callers need no try/catch.
    accept('error', 'internal-error', `internal error while checking the policy: ${(e as Error)?.message ?? String(e)}`, at(file, 1, 1));
    policy = null;
  }
  return { policy, diagnostics: limit(dedupe(dropCascades(sortDiagnostics(diagnostics), regions))) };
}

/** Lexed in upper case too (GPFS habit) and reported once each; the rule parses on. */
const UPPER_KEYWORDS = new Set([And, Or, Not, In]);

/** `name ~ *.log`: a glob written without quotes. */
function bareGlobHint(t: IToken | undefined, prev: IToken | undefined): string | undefined {
  const afterMatch = prev && (prev.tokenType === Match || prev.tokenType === NotMatch || prev.tokenType === LParen || prev.tokenType === Comma);
  return t?.tokenType === Star && afterMatch ? 'a glob is a string: write it in quotes, e.g. "*.log"' : undefined;
}

const at = (file: string, line: number, col: number, length = 1): Span => ({ file, line, col, length: Math.max(1, length) });

function printable(ch: string): string {
  const c = ch.codePointAt(0) ?? 0;
  return c < 0x20 || c === 0x7f || ch === '\ufffd' ? `\\x${c.toString(16).padStart(2, '0')}` : `'${ch}'`;
}

/** Where a syntax error points: its token, or just after the previous one at end of file. */
function errorSpan(t: IToken | undefined, prev: IToken | undefined, file: string): Span {
  if (t && Number.isFinite(t.startLine) && Number.isFinite(t.startColumn)) return spanOf(t, file);
  if (prev && Number.isFinite(prev.endLine) && Number.isFinite(prev.endColumn)) return at(file, prev.endLine!, prev.endColumn! + 1);
  return at(file, 1, 1);
}

/** Drops parentheses nested deeper than MAX_NESTING (and their partners), reporting once. */
function flattenDeepParens(tokens: IToken[], file: string, accept: ReturnType<typeof collector>): IToken[] {
  const stack: boolean[] = []; // true: this '(' was dropped
  const out: IToken[] = [];
  let reported = false;
  for (const t of tokens) {
    if (t.tokenType === LParen) {
      const drop = stack.length >= MAX_NESTING;
      stack.push(drop);
      if (!drop) out.push(t);
      else if (!reported) {
        accept('error', 'nesting-too-deep', `parentheses nested more than ${MAX_NESTING} deep`, spanOf(t, file));
        reported = true;
      }
    } else if (t.tokenType === RParen) {
      if (!stack.pop()) out.push(t);
    } else out.push(t);
  }
  return out;
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const k = `${d.span.line}:${d.span.col}:${d.code}:${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function limit(ds: Diagnostic[]): Diagnostic[] {
  if (ds.length <= MAX_DIAGNOSTICS) return ds;
  const rest = ds.length - MAX_DIAGNOSTICS;
  const last = ds[MAX_DIAGNOSTICS - 1]!;
  const severity = hasErrors(ds.slice(MAX_DIAGNOSTICS)) ? 'error' : 'warning';
  return [...ds.slice(0, MAX_DIAGNOSTICS), { severity, code: 'too-many-errors', message: `${rest} more problems not shown`, span: last.span }];
}
