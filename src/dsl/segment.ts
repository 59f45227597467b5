// Cuts the token stream into one segment per top-level declaration, plus runs of stray
// tokens between them. A declaration keyword starts a new segment at brace depth 0, and
// also inside an unclosed block when it is followed by a declaration header (`tier NAME {`),
// so a missing '}' costs one error, not the rest of the file.
import { tokenMatcher, type IToken, type TokenType } from './cst.js';
import { Fileset, LCurly, Name, On, Policy, RCurly, Recall, Tier } from './tokens.js';

export interface Decl {
  tokens: IToken[];
  /** The first token after the segment, if any: what a "missing '}'" really ran into. */
  next?: IToken;
}

export interface Segments {
  decls: Decl[];
  /** Runs of tokens outside any declaration, each reported once. */
  junk: IToken[][];
}

const is = (t: IToken | undefined, tt: TokenType): boolean => t !== undefined && tokenMatcher(t, tt);

/** `tier N {`, `fileset N {`, `policy N [on F] {`, `recall {` starting at index i. */
function isHeader(ts: IToken[], i: number): boolean {
  const t = ts[i];
  if (is(t, Recall)) return is(ts[i + 1], LCurly);
  if (is(t, Tier) || is(t, Fileset)) return is(ts[i + 1], Name) && is(ts[i + 2], LCurly);
  if (is(t, Policy)) {
    if (!is(ts[i + 1], Name)) return false;
    return is(ts[i + 2], LCurly) || (is(ts[i + 2], On) && is(ts[i + 3], Name) && is(ts[i + 4], LCurly));
  }
  return false;
}

const isDeclKeyword = (t: IToken) => is(t, Tier) || is(t, Fileset) || is(t, Policy) || is(t, Recall);

export function segment(tokens: IToken[]): Segments {
  const decls: Decl[] = [];
  const junk: IToken[][] = [];
  let cur: IToken[] | undefined;
  let last: Decl | undefined; // the latest segment, until its `next` token is seen
  let stray: IToken[] | undefined;
  let depth = 0;
  let opened = false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (last && cur === undefined && !last.next) last.next = t;
    if (isDeclKeyword(t) && (cur === undefined || isHeader(tokens, i))) {
      if (last && !last.next) last.next = t;
      cur = [t];
      last = { tokens: cur };
      decls.push(last);
      stray = undefined;
      depth = 0;
      opened = false;
      continue;
    }
    if (!cur) {
      if (!stray) junk.push((stray = []));
      stray.push(t);
      continue;
    }
    cur.push(t);
    if (is(t, LCurly)) {
      depth++;
      opened = true;
    } else if (is(t, RCurly) && --depth <= 0 && opened) {
      cur = undefined; // the declaration is complete; what follows is a new one or junk
    }
  }
  return { decls, junk };
}
