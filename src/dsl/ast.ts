// The checked policy model. The parser builds it, the validator checks it, the engine
// consumes it. Every node keeps a span so any later message can point at the source.
// Sizes are bytes, durations milliseconds, percentages 0..100.

export interface Span {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
  length: number;
}

export interface PolicyFile {
  file: string;
  tiers: TierDecl[];
  filesets: FilesetDecl[];
  policies: PolicyDecl[];
  recall: RecallSettings;
}

/** Daemon-wide recall behaviour (`recall { ... }` block; defaults when absent). */
export interface RecallSettings {
  /** Programs (by /proc/PID/comm) that get the whole file recalled at open: sparse-aware copiers. */
  wholeFileFor: string[];
  span?: Span;
}

/**
 * Programs that look for data with SEEK_DATA/SEEK_HOLE (no event: a released file looks
 * all hole) or that check ctime while they read. qemu-*: image conversion and export.
 */
export const DEFAULT_WHOLE_FILE_FOR = ['cp', 'mv', 'install', 'tar', 'rsync', 'bsdtar', 'cpio', 'qemu-img', 'qemu-nbd', 'qemu-storage-daemon'];

export interface TierTuning {
  chunk: number; // bytes, default 16 KiB (new copies of files past 1 GiB get more: copyChunkFor)
  readahead: number; // bytes, default 16 MiB
  timeoutMs: number; // default 30 s
  concurrency: number; // default 8
  /** Bytes per second for all traffic to the tier (recalls first); absent: unlimited. */
  bwlimit?: number;
  /** Requests per second to the tier; absent: unlimited. */
  tpslimit?: number;
}

export const DEFAULT_TUNING: TierTuning = {
  chunk: 16 * 1024,
  readahead: 16 * 1024 * 1024,
  timeoutMs: 30_000,
  concurrency: 8,
};

/**
 * An S3 tier's defaults where they differ: a 64 MiB read-ahead window, topped up in GETs of
 * 16 MiB (recall/fill.ts streamGetBytes). Each request costs the server a RADOS read per
 * stripe it touches and a round trip: a 512 MiB cold `cat` from RGW made 100 GETs and ~330
 * RADOS reads with 16 MiB, 68 and ~265 with 64 MiB, and ran 0.74-0.82x one GetObject
 * against 0.70-0.72x, interleaved (docs/recall.md "the server's share"). A stream still
 * fetches at most twice what it read (recall/readahead.ts), so `head -c 1M` costs the same.
 */
export const S3_TUNING: Partial<TierTuning> = {
  readahead: 64 * 1024 * 1024,
};

interface TierBase {
  name: string;
  span: Span;
  tuning: TierTuning;
}

export interface LocalTierDecl extends TierBase {
  kind: 'local';
  path: string;
}

export interface S3TierDecl extends TierBase {
  kind: 's3';
  bucket: string;
  prefix: string; // '' when absent
  endpoint?: string;
  region?: string;
  storageClass?: string;
  profile?: string;
  pathStyle?: boolean;
  /** 'when_required' for servers without x-amz-checksum support (Ceph RGW 16); absent: SDK/env default. */
  checksum?: 'when_required' | 'when_supported';
}

/** A read-only HTTP(S) server with directory indexes (src/tiers/http.ts): import only. */
export interface HttpTierDecl extends TierBase {
  kind: 'http';
  url: string;
}

export type TierDecl = LocalTierDecl | S3TierDecl | HttpTierDecl;

export interface FilesetDecl {
  name: string;
  span: Span;
  roots: string[]; // absolute
  /**
   * Where the admin mounts the managed filesystem (private, mode 0700 above it); the daemon
   * bind-mounts it onto the one root once every released file is marked. Absent: none.
   */
  backing?: { path: string; span: Span };
  include: string[]; // globs relative to the root; ['**'] when absent
  exclude: string[];
}

export type OrderKey = 'last_access' | 'last_mod' | 'last_change' | 'size';

export interface PolicyDecl {
  name: string;
  span: Span;
  fileset: string;
  filesetSpan: Span;
  schedule?: { cron: string; span: Span };
  timezone?: string;
  watermark?: { high: number; low: number; span: Span };
  checkIntervalMs?: number; // watermark polling, default 5 min
  orderBy?: { key: OrderKey; dir: 'asc' | 'desc'; span: Span };
  limitFiles?: number;
  limitBytes?: number;
  concurrency?: number;
  cooldownMs?: number; // do not release a file recalled within this time
  keepDeletedMs?: number; // orphan objects of deleted files are kept this long
  rules: Rule[];
}

export type FileState = 'resident' | 'archived' | 'dirty' | 'released' | 'partial';

export type Attr =
  | 'size'
  | 'last_access'
  | 'last_mod'
  | 'last_change'
  | 'path'
  | 'name'
  | 'owner'
  | 'group'
  | 'uid'
  | 'gid'
  | 'state'
  | 'pinned';

export type CmpOp = '==' | '!=' | '<' | '<=' | '>' | '>=' | '~' | '!~';

export type Value =
  | { kind: 'size'; bytes: number; span: Span }
  | { kind: 'duration'; ms: number; span: Span }
  | { kind: 'percent'; value: number; span: Span }
  | { kind: 'number'; value: number; span: Span }
  | { kind: 'string'; value: string; span: Span }
  | { kind: 'ident'; name: string; span: Span } // state names, true/false
  | { kind: 'bool'; value: boolean; span: Span };

export type Expr =
  | { kind: 'and'; left: Expr; right: Expr; span: Span }
  | { kind: 'or'; left: Expr; right: Expr; span: Span }
  | { kind: 'not'; operand: Expr; span: Span }
  | { kind: 'cmp'; attr: Attr; attrSpan: Span; op: CmpOp; opSpan?: Span; value: Value; span: Span }
  /** `attr in (v, ...)`: any element matches (globs for path and name, equality otherwise). */
  | { kind: 'in'; attr: Attr; attrSpan: Span; negated: boolean; opSpan: Span; values: Value[]; span: Span }
  | { kind: 'true'; span: Span }; // unconditional rule

export type Action =
  | { kind: 'keep'; span: Span }
  | { kind: 'pin'; span: Span }
  | { kind: 'unpin'; span: Span }
  | { kind: 'recall'; span: Span }
  | { kind: 'archive'; tier: string; tierSpan: Span; span: Span }
  | { kind: 'release'; tier: string; tierSpan: Span; span: Span };

export type ActionKind = Action['kind'];

export interface Rule {
  name: string;
  span: Span;
  cond: Expr;
  action: Action;
}
