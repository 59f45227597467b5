// Human wording for chevrotain's syntax errors: "expected ':' after the rule name but found
// '->'" rather than "Expecting token of type --> Colon <--". Token labels come from tokens.ts.
import { EOF, type IParserErrorMessageProvider, type IToken, type TokenType } from './cst.js';

export function describeToken(t: IToken | undefined): string {
  if (!t || t.tokenType === EOF) return 'the end of the file';
  const img = t.image.length > 30 ? t.image.slice(0, 27) + '...' : t.image;
  return `'${img.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}'`;
}

const label = (tt: TokenType): string => tt.LABEL ?? tt.name;

function oneOf(labels: string[]): string {
  const uniq = [...new Set(labels)];
  if (uniq.length <= 1) return uniq[0] ?? 'something else';
  return `${uniq.slice(0, -1).join(', ')} or ${uniq[uniq.length - 1]}`;
}

/** What the user was in the middle of writing, by grammar rule. */
const CONTEXT: Record<string, string> = {
  primary: 'a condition (e.g. size > 1MiB, name ~ "*.log", or true)',
  comparison: 'a comparison (ATTRIBUTE OP VALUE)',
  action: 'an action (keep, pin, unpin, recall, archive to TIER, release to TIER)',
  block: "an option, a rule or '}'",
};

export const errorMessageProvider: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual, ruleName }) {
    if (ruleName === 'block' && expected.name === 'RCurly') {
      return `expected ${CONTEXT.block} but found ${describeToken(actual)}`;
    }
    return `expected ${label(expected)} but found ${describeToken(actual)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `unexpected ${describeToken(firstRedundant)} after the end of the declaration`;
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, actual, ruleName }) {
    const what =
      CONTEXT[ruleName] ?? oneOf(expectedPathsPerAlt.flatMap((paths) => paths.map((p) => (p[0] ? label(p[0]) : 'more'))));
    return `expected ${what} but found ${describeToken(actual[0])}`;
  },
  buildEarlyExitMessage({ expectedIterationPaths, actual, ruleName }) {
    const what = CONTEXT[ruleName] ?? oneOf(expectedIterationPaths.map((p) => (p[0] ? label(p[0]) : 'more')));
    return `expected ${what} but found ${describeToken(actual[0])}`;
  },
};
