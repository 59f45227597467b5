// Hand-built ASTs and facts for the pure engine tests (no parser needed).
import type { Action, Attr, CmpOp, Expr, PolicyDecl, Rule, Span, Value } from '../../src/dsl/ast.js';
import type { FileFacts } from '../../src/engine/facts.js';

export const sp = (line = 1, col = 1): Span => ({ file: 't.hsmpolicy', line, col, length: 1 });

export function cmp(attr: Attr, op: CmpOp, value: Value): Expr {
  return { kind: 'cmp', attr, attrSpan: sp(), op, value, span: sp() };
}
export const size = (bytes: number): Value => ({ kind: 'size', bytes, span: sp() });
export const dur = (ms: number): Value => ({ kind: 'duration', ms, span: sp() });
export const str = (value: string): Value => ({ kind: 'string', value, span: sp() });
export const ident = (name: string): Value => ({ kind: 'ident', name, span: sp() });
export const num = (value: number): Value => ({ kind: 'number', value, span: sp() });
export const and = (left: Expr, right: Expr): Expr => ({ kind: 'and', left, right, span: sp() });
export const or = (left: Expr, right: Expr): Expr => ({ kind: 'or', left, right, span: sp() });
export const not = (operand: Expr): Expr => ({ kind: 'not', operand, span: sp() });
export const always: Expr = { kind: 'true', span: sp() };

export const release = (tier: string): Action => ({ kind: 'release', tier, tierSpan: sp(), span: sp() });
export const archive = (tier: string): Action => ({ kind: 'archive', tier, tierSpan: sp(), span: sp() });
export const keep: Action = { kind: 'keep', span: sp() };
export const pin: Action = { kind: 'pin', span: sp() };
export const unpin: Action = { kind: 'unpin', span: sp() };
export const recall: Action = { kind: 'recall', span: sp() };

export function rule(name: string, cond: Expr, action: Action, line = 1): Rule {
  return { name, span: sp(line), cond, action };
}

export function policy(rules: Rule[], extra: Partial<PolicyDecl> = {}): PolicyDecl {
  return { name: 'p', span: sp(), fileset: 'fs', filesetSpan: sp(), rules, ...extra };
}

export const DAY = 86_400_000;
export const NOW = Date.UTC(2026, 10, 28);

let ino = 100;
export function facts(path: string, over: Partial<FileFacts> = {}): FileFacts {
  const size = over.size ?? 1000;
  return {
    path,
    absPath: '/r/' + path,
    name: path.split('/').pop()!,
    root: '/r',
    size,
    blocks: Math.ceil(size / 4096) * 8,
    atimeMs: NOW - DAY,
    mtimeMs: NOW - DAY,
    ctimeMs: NOW - DAY,
    mtimeNs: String(BigInt(NOW - DAY) * 1_000_000n),
    mode: 0o100644,
    uid: 1000,
    gid: 1000,
    owner: 'alice',
    group: 'staff',
    dev: 1,
    ino: ino++,
    state: 'resident',
    pinned: false,
    record: null,
    ...over,
  };
}
