// Small accessors over chevrotain's CST: children may be missing in a tree built with error
// recovery, and tokens inserted by recovery have no text; callers get undefined instead.
import type { CstElement, CstNode, IToken } from 'chevrotain';

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
