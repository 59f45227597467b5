// The one storage seam. Every tier (local directory, S3) implements it and passes
// the same contract suite (test/tiers/contract.ts).
//
// Contract:
// - put() is atomic: after it resolves the whole object is visible under `key`;
//   if it rejects or is aborted, nothing is visible under `key` (a previous object
//   under that key, if any, is left unchanged or replaced whole, never partially).
// - put() verifies what it wrote: stored size == `size`, else TierError 'ShortObject'.
//   It returns the SHA-256 (hex) of the bytes it streamed.
// - get() of a range past the end returns the bytes that exist (possibly none);
//   a missing key is TierError 'NotFound' (permanent).
// - delete() of a missing key succeeds.
// - list() pages internally and yields every key under the prefix once.
// - Every call honours its AbortSignal and the tier's timeout; none hangs forever.
// - Errors are TierError with op, tier, key and `permanent` (retrying cannot help).
// - Keys are relative '/'-separated paths; checkKey() (keys.ts) rejects '..', absolute
//   paths and names reserved for the tiers' own temp files ('InvalidKey', permanent).
import type { Readable } from 'node:stream';
import type { TierTuning } from '../dsl/ast.js';

/** What travels with each object so a file can be rebuilt if the local filesystem is lost. */
export interface ObjectMeta {
  sha256: string; // hex of the whole content
  size: number;
  path: string; // absolute path at archive time
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
  etag?: string;
  lastModified?: Date;
  meta?: Partial<ObjectMeta>; // stat() fills it; list() may not
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface PutResult {
  sha256: string;
  size: number;
  etag?: string;
  /**
   * The tier checked the stored bytes against the ones it was sent (S3 single PUT: the
   * server checked Content-MD5 and the ETag is that MD5): a stat after the put would only
   * say it again (engine/upload.ts skips it).
   */
  contentChecked?: boolean;
}

export interface Tier {
  readonly name: string;
  readonly kind: 'local' | 's3' | 'http';
  /** The policy's tuning for this tier (chunk, read-ahead, timeout, concurrency), when it came from one. */
  readonly tuning?: TierTuning;
  put(key: string, body: Readable, size: number, meta: ObjectMeta, signal?: AbortSignal): Promise<PutResult>;
  /**
   * Whole object (range absent) or a byte range, as a buffer. `expect`, a validator
   * (src/import/validator.ts: `etag:...` or `lm:<ms>`), makes the read conditional: an object
   * that no longer matches it is TierError 'Changed' (permanent), never its bytes.
   */
  get(key: string, range?: ByteRange, signal?: AbortSignal, expect?: string): Promise<Buffer>;
  /**
   * get() of a range into `dst` (at least range.length bytes) from its start: the bytes
   * read, fewer past the end. Optional: readInto() falls back to get() and a copy.
   * Recall reads runs into reused buffers with it (no allocation per GET). `progress`, when
   * the tier reports it (S3), is told how many bytes from dst's start are in place as they
   * arrive (only ever more: bytes once there never change), so a caller may use them early.
   */
  getInto?(key: string, range: ByteRange, dst: Buffer, signal?: AbortSignal, expect?: string, progress?: Progress): Promise<number>;
  /** Streaming read for large objects (whole-file recall, verification). */
  getStream(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable>;
  stat(key: string, signal?: AbortSignal): Promise<ObjectInfo | null>;
  delete(key: string, signal?: AbortSignal): Promise<void>;
  list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo>;
  /** Removes leftovers of interrupted puts older than maxAgeMs (temp files, staging objects,
   *  incomplete multipart uploads). Returns how many were removed. */
  sweepTemp?(maxAgeMs?: number, signal?: AbortSignal): Promise<number>;
  close(): Promise<void>;
}

export type TierErrorCode =
  | 'NotFound'
  | 'AccessDenied'
  | 'ShortObject'
  | 'Corrupt'
  | 'Timeout'
  | 'Aborted'
  | 'Unavailable'
  | 'Throttled'
  | 'InvalidKey'
  | 'Changed' // a conditional get: the object is not the one the validator names
  | 'Io';

const PERMANENT: ReadonlySet<TierErrorCode> = new Set([
  'NotFound',
  'AccessDenied',
  'ShortObject',
  'Corrupt',
  'InvalidKey',
  'Changed',
]);

export class TierError extends Error {
  readonly permanent: boolean;
  constructor(
    readonly code: TierErrorCode,
    readonly op: string,
    readonly tier: string,
    readonly key: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`tier ${tier}: ${op} ${JSON.stringify(key)}: ${code}: ${detail}`, options);
    this.name = 'TierError';
    this.permanent = PERMANENT.has(code);
  }
}

export function isTierError(e: unknown): e is TierError {
  return e instanceof TierError;
}

/** getInto's report: bytes in place from dst's start. */
export type Progress = (have: number) => void;

/** tier.getInto, or get() and a copy for a tier without it: the bytes now in `dst`. */
export async function readInto(tier: Tier, key: string, range: ByteRange, dst: Buffer, signal?: AbortSignal, expect?: string, progress?: Progress): Promise<number> {
  if (tier.getInto) return tier.getInto(key, range, dst, signal, expect, progress);
  const got = await tier.get(key, range, signal, expect);
  if (got.length > dst.length) throw new TierError('Unavailable', 'get', tier.name, key, `range ${range.offset}+${range.length} answered ${got.length} bytes`);
  return got.copy(dst, 0);
}
