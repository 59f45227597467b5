// chevrotain's seam: its one value importer, and small accessors over its CST.
// Loading: the package entry (lib/src/api.js) loads about 700 modules, lodash-es one function
// a file, some 600 ms of every CLI start that parses a policy; the package also ships the same
// code as one ES module (lib/chevrotain.mjs, no imports of its own), which its exports map
// hides, so it is found beside the resolved entry. Every caller takes chevrotain's values
// from here (type imports may name 'chevrotain'), so its classes and token types are one copy.
// Accessors: children may be missing in a tree built with error
// recovery, and tokens inserted by recovery have no text; callers get undefined instead.
import type * as Chevrotain from 'chevrotain';
import type { CstElement, CstNode, IToken } from 'chevrotain';

const bundled = new URL('../chevrotain.mjs', import.meta.resolve('chevrotain'));
const chevrotain = (await import(bundled.href)) as typeof Chevrotain;

export const { createToken, CstParser, EOF, Lexer, tokenMatcher } = chevrotain;
export type CstParser = Chevrotain.CstParser;
export type Lexer = Chevrotain.Lexer;
export type { CstNode, IParserErrorMessageProvider, IRecognitionException, IToken, TokenType } from 'chevrotain';

export const isToken = (e: CstElement): e is IToken => (e as IToken).tokenType !== undefined;

export function tokens(node: CstNode | undefined, name: string): IToken[] {
  const list = node?.children[name] ?? [];
  return list.filter((e): e is IToken => isToken(e) && !e.isInsertedInRecovery && Number.isFinite(e.startOffset));
}

export function token(node: CstNode | undefined, name: string): IToken | undefined {
  return tokens(node, name)[0];
}

export function nodes(node: CstNode | undefined, name: string): CstNode[] {
  const list = node?.children[name] ?? [];
  return list.filter((e): e is CstNode => !isToken(e));
}

export function node(parent: CstNode | undefined, name: string): CstNode | undefined {
  return nodes(parent, name)[0];
}

/** First real token anywhere under a node, in source order. */
export function firstToken(n: CstNode): IToken | undefined {
  let best: IToken | undefined;
  for (const list of Object.values(n.children)) {
    for (const e of list) {
      const t = isToken(e) ? (e.isInsertedInRecovery ? undefined : e) : firstToken(e);
      if (t && Number.isFinite(t.startOffset) && (!best || t.startOffset < best.startOffset)) best = t;
    }
  }
  return best;
}

/** Last real token anywhere under a node, in source order. */
export function lastToken(n: CstNode): IToken | undefined {
  let best: IToken | undefined;
  for (const list of Object.values(n.children)) {
    for (const e of list) {
      const t = isToken(e) ? (e.isInsertedInRecovery ? undefined : e) : lastToken(e);
      if (t && Number.isFinite(t.startOffset) && (!best || t.startOffset > best.startOffset)) best = t;
    }
  }
  return best;
}
