// CST -> AST (src/dsl/ast.ts) for declarations. Blocks are lists of generic settings;
// here each block kind picks the keys it knows, reads typed values and fills defaults.
// Anything it cannot place is reported; nodes too broken to build are left out.
import type { CstNode } from 'chevrotain';
import {
  DEFAULT_TUNING,
  S3_TUNING,
  DEFAULT_WHOLE_FILE_FOR,
  type FilesetDecl,
  type PolicyFile,
  type RecallSettings,
  type Span,
  type TierDecl,
  type TierTuning,
} from './ast.js';
import type { Accept } from './diagnostics.js';
import { node, nodes, token } from './cst.js';
import { blockSettings, readBool, readCount, readEnum, readFlag, readQuantity, readString, readStrings } from './settings.js';
import { checkBacking, checkGlob, checkRoot } from './check-values.js';
import { policyToAst } from './to-ast-policy.js';
import { spanOf } from './values.js';

export const TIER_OPTIONS = [
  'local',
  's3',
  'http',
  'bucket',
  'prefix',
  'endpoint',
  'region',
  'storage_class',
  'profile',
  'path_style',
  'checksum',
  'chunk',
  'readahead',
  'timeout',
  'concurrency',
  'bwlimit',
  'tpslimit',
] as const;
const S3_ONLY = new Set(['bucket', 'prefix', 'endpoint', 'region', 'storage_class', 'profile', 'path_style', 'checksum']);
export const FILESET_OPTIONS = ['root', 'backing', 'include', 'exclude'] as const;
export const RECALL_OPTIONS = ['whole_file_for'] as const;

/** Names declared in the file, including declarations too broken to build. */
export interface Declared {
  tiers: Set<string>;
  filesets: Set<string>;
}

/** `decls`: one `declaration` CST node per top-level segment, in source order. */
export function fileToAst(decls: CstNode[], file: string, accept: Accept, declared?: Declared): PolicyFile {
  const pf: PolicyFile = { file, tiers: [], filesets: [], policies: [], recall: { wholeFileFor: [...DEFAULT_WHOLE_FILE_FOR] } };
  let recallSeen: Span | undefined;
  const all = (kind: string) => decls.flatMap((d) => nodes(d, kind));
  for (const n of all('tierDecl')) {
    declared?.tiers.add(token(n, 'name')?.image ?? '');
    const t = tierToAst(n, file, accept);
    if (t) pf.tiers.push(t);
  }
  for (const n of all('filesetDecl')) {
    declared?.filesets.add(token(n, 'name')?.image ?? '');
    const f = filesetToAst(n, file, accept);
    if (f) pf.filesets.push(f);
  }
  const tiers = new Set([...pf.tiers.map((t) => t.name), ...(declared?.tiers ?? [])]);
  for (const n of all('policyDecl')) {
    const p = policyToAst(n, file, accept, tiers);
    if (p) pf.policies.push(p);
  }
  for (const n of all('recallDecl')) {
    const kw = token(n, 'Kw_recall');
    const span = kw ? spanOf(kw, file) : undefined;
    if (recallSeen && span) accept('error', 'duplicate-option', `only one recall block is allowed (first at line ${recallSeen.line})`, span);
    else if (span) {
      recallSeen = span;
      pf.recall = recallToAst(n, span, file, accept);
    }
  }
  return pf;
}

function tierToAst(n: CstNode, file: string, accept: Accept): TierDecl | undefined {
  const name = token(n, 'name');
  if (!name) return undefined;
  const span = spanOf(name, file);
  const settings = blockSettings(node(n, 'block'), 'tier', TIER_OPTIONS, file, accept);
  const kinds = settings.filter((s) => s.key === 'local' || s.key === 's3' || s.key === 'http');
  if (kinds.length === 0) {
    accept('error', 'missing-tier-kind', `tier '${name.image}' needs a kind: local "/path", s3 bucket "name" or http "URL"`, span);
    return undefined;
  }
  if (kinds.length > 1) {
    accept('error', 'conflicting-tier-kind', `tier '${name.image}' is already ${kinds[0]!.key}; a tier has one kind`, kinds[1]!.keySpan);
    return undefined;
  }
  const kind = kinds[0]!;
  const tuning: TierTuning = { ...DEFAULT_TUNING, ...(kind.key === 's3' ? S3_TUNING : {}) };
  const s3: Partial<Record<string, unknown>> = {};
  for (const s of settings) {
    if (kind.key !== 's3' && S3_ONLY.has(s.key)) {
      accept('error', 'not-applicable', `'${s.key}' applies to s3 tiers only; tier '${name.image}' is ${kind.key}`, s.keySpan);
      continue;
    }
    switch (s.key) {
      case 'chunk':
      case 'readahead':
      case 'bwlimit': {
        const v = readQuantity(s, 'size', accept);
        if (v !== undefined) tuning[s.key] = v;
        break;
      }
      case 'timeout': {
        const v = readQuantity(s, 'duration', accept);
        if (v !== undefined) tuning.timeoutMs = v;
        break;
      }
      case 'concurrency':
      case 'tpslimit': {
        const v = readCount(s, accept);
        if (v !== undefined) tuning[s.key] = v;
        break;
      }
      case 'path_style':
        s3.pathStyle = readBool(s, accept);
        break;
      case 'checksum':
        s3.checksum = readEnum(s, ['when_required', 'when_supported'] as const, accept);
        break;
      case 's3':
        readFlag(s, accept);
        break;
      case 'local':
      case 'http':
        break;
      default:
        s3[s.key] = readString(s, accept);
    }
  }
  if (kind.key === 'local') {
    const path = readString(kind, accept);
    if (path === undefined) return undefined;
    checkRoot(path, kind.values[0]!.span, accept, 'local tier path');
    return { kind: 'local', name: name.image, span, tuning, path };
  }
  if (kind.key === 'http') {
    const url = readString(kind, accept);
    if (url === undefined) return undefined;
    if (!/^https?:\/\/[^\s/]+/.test(url)) {
      accept('error', 'invalid-value', `http tier URL "${url}" is not an http:// or https:// URL`, kind.values[0]!.span);
      return undefined;
    }
    return { kind: 'http', name: name.image, span, tuning, url };
  }
  if (typeof s3.bucket !== 'string' || s3.bucket === '') {
    if (!settings.some((s) => s.key === 'bucket')) accept('error', 'missing-bucket', `s3 tier '${name.image}' needs bucket "NAME"`, span);
    return undefined;
  }
  if (typeof s3.endpoint === 'string' && !/^https?:\/\/[^\s/]+/.test(s3.endpoint)) {
    const s = settings.find((x) => x.key === 'endpoint')!;
    accept('error', 'invalid-value', `endpoint "${s3.endpoint}" is not an http:// or https:// URL`, s.values[0]!.span);
  }
  const t: TierDecl = { kind: 's3', name: name.image, span, tuning, bucket: s3.bucket, prefix: (s3.prefix as string | undefined) ?? '' };
  if (typeof s3.endpoint === 'string') t.endpoint = s3.endpoint;
  if (typeof s3.region === 'string') t.region = s3.region;
  if (typeof s3.storage_class === 'string') t.storageClass = s3.storage_class;
  if (typeof s3.profile === 'string') t.profile = s3.profile;
  if (typeof s3.pathStyle === 'boolean') t.pathStyle = s3.pathStyle;
  if (s3.checksum === 'when_required' || s3.checksum === 'when_supported') t.checksum = s3.checksum;
  return t;
}

function filesetToAst(n: CstNode, file: string, accept: Accept): FilesetDecl | undefined {
  const name = token(n, 'name');
  if (!name) return undefined;
  const span = spanOf(name, file);
  const f: FilesetDecl = { name: name.image, span, roots: [], include: [], exclude: [] };
  for (const s of blockSettings(node(n, 'block'), 'fileset', FILESET_OPTIONS, file, accept)) {
    if (s.key === 'backing') {
      const path = readString(s, accept);
      if (path === undefined) continue;
      const vs = s.values[0]!.span;
      checkRoot(path, vs, accept, 'backing');
      f.backing = { path: path.length > 1 ? path.replace(/\/+$/, '') : path, span: vs };
      continue;
    }
    for (const { value, span: vs } of readStrings(s, accept)) {
      if (s.key === 'root') {
        checkRoot(value, vs, accept);
        f.roots.push(value.length > 1 ? value.replace(/\/+$/, '') : value);
      } else {
        checkGlob(value, vs, accept);
        (s.key === 'include' ? f.include : f.exclude).push(value);
      }
    }
  }
  if (f.roots.length === 0) accept('error', 'missing-root', `fileset '${name.image}' needs at least one root "/absolute/path"`, span);
  else if (f.backing) checkBacking(f.backing.path, f.roots, f.backing.span, accept);
  if (f.include.length === 0) f.include.push('**');
  return f;
}

function recallToAst(n: CstNode, span: Span, file: string, accept: Accept): RecallSettings {
  const r: RecallSettings = { wholeFileFor: [...DEFAULT_WHOLE_FILE_FOR], span };
  const lists = blockSettings(node(n, 'block'), 'recall', RECALL_OPTIONS, file, accept);
  if (lists.length > 0) r.wholeFileFor = lists.flatMap((s) => readStrings(s, accept).map((x) => x.value));
  return r;
}
