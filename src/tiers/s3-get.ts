// S3 reads: ranged GET (`bytes=a-b`). A range past the end is answered by the server with
// 416 (or fewer bytes): both mean "the bytes that exist". The body is checked against its
// Content-Length, so a cut connection is an error, never silently short data.
import type { S3Client } from '@aws-sdk/client-s3';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { callS3, type CallContext } from './s3-client.js';
import { BodyError, FallBack, type S3Direct } from './s3-direct.js';
import { mapS3Error } from './s3-errors.js';
import type { S3Hot } from './s3-hot.js';
import { TierError, type ByteRange, type Progress } from './tier.js';
import { parseValidator } from './validator.js';

/** Ranged get()s up to this long go by s3-direct.ts into one allocation; longer ones (rare) stream. */
const DIRECT_GET_MAX = 64 * 1024 * 1024;

export interface GetContext {
  client: S3Client;
  direct?: S3Direct;
  hot: S3Hot;
  bucket: string;
  tier: string;
  timeoutMs: number;
}

export async function s3GetStream(g: GetContext, key: string, objKey: string, range: ByteRange | undefined, signal?: AbortSignal, expect?: string): Promise<Readable> {
  const o = await openBody(g, key, objKey, range, signal, expect);
  if (!o) return Readable.from([]);
  const out = new BodyCheck(new BodyCut(o.want, o.skip, o.contentLength), (detail) => new TierError('Unavailable', 'get', g.tier, key, detail));
  o.body.once('error', (e) => out.destroy(mapS3Error(e, { ...o.c, caller: signal })));
  out.once('close', () => o.body.readableEnded || o.body.destroy());
  o.body.pipe(out);
  out.on('error', () => {}); // consumers see errors via pipeline/for-await; an unread stream must not crash the daemon
  return out;
}

/** The range as one buffer, read straight off the response (no stream stage of our own: recall's hot path). */
export async function s3Get(g: GetContext, key: string, objKey: string, range: ByteRange | undefined, signal?: AbortSignal, expect?: string): Promise<Buffer> {
  if (g.direct && range && range.length > 0 && range.length <= DIRECT_GET_MAX && expect === undefined && (await g.direct.target().catch(() => null))) {
    // A range of known length (chunk sums, a chunk): read as getInto reads, into a buffer of
    // its own (allocated only when the direct path serves the bucket: else parts as they come).
    const dst = Buffer.allocUnsafeSlow(range.length);
    const n = await s3GetInto(g, key, objKey, range, dst, signal);
    return n === dst.length ? dst : dst.subarray(0, n);
  }
  const parts: Buffer[] = [];
  const sent = await readBody(g, key, objKey, range, signal, expect, (piece) => parts.push(piece));
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, sent);
}

/** s3Get into `dst` from its start (Tier.getInto): the bytes written; more than fit is an error. */
export async function s3GetInto(g: GetContext, key: string, objKey: string, range: ByteRange, dst: Buffer, signal?: AbortSignal, expect?: string, progress?: Progress): Promise<number> {
  // Unconditional, over plain http: the body read straight into dst (s3-direct.ts).
  const t = g.direct && expect === undefined && range.length > 0 ? await g.direct.target().catch(() => null) : null;
  if (t) {
    const c: CallContext = { op: 'get', tier: g.tier, key, bucket: g.bucket, timeoutMs: g.timeoutMs };
    try {
      return await callS3(c, signal, (s, started) => g.direct!.getInto(t, objKey, range, dst, s, progress, started));
    } catch (e) {
      const cause = (e as { cause?: unknown }).cause;
      const mine = (e as TierError).code === 'Io'; // not the caller's abort nor our deadline
      if (!(mine && cause instanceof FallBack)) throw mine && cause instanceof BodyError ? new TierError('Unavailable', 'get', g.tier, key, cause.message, { cause }) : e;
    }
  }
  let at = 0;
  return readBody(g, key, objKey, range, signal, expect, (piece) => {
    if (at + piece.length > dst.length) throw new TierError('Unavailable', 'get', g.tier, key, `range ${range.offset}+${range.length} answered more bytes`);
    at += piece.copy(dst, at);
    progress?.(at);
  });
}

/** The range's bytes, piece by piece as they arrive, to `take`: their count. */
async function readBody(g: GetContext, key: string, objKey: string, range: ByteRange | undefined, signal: AbortSignal | undefined, expect: string | undefined, take: (piece: Buffer) => void): Promise<number> {
  const o = await openBody(g, key, objKey, range, signal, expect);
  if (!o) return 0;
  const cut = new BodyCut(o.want, o.skip, o.contentLength);
  try {
    for await (const chunk of o.body as AsyncIterable<Buffer>) {
      const piece = cut.piece(chunk);
      if (piece.length > 0) take(piece);
    }
  } catch (e) {
    if (e instanceof TierError) {
      o.body.destroy();
      throw e;
    }
    throw mapS3Error(e, { ...o.c, caller: signal });
  }
  const short = cut.short();
  if (short !== null) throw new TierError('Unavailable', 'get', g.tier, key, short);
  return cut.sent;
}

interface OpenBody {
  c: CallContext;
  body: Readable;
  want: number; // bytes of the range to pass on (-1: all)
  skip: number; // body bytes before the range (a server that ignored Range)
  contentLength: number; // -1: unknown
}

/**
 * The response body for a range (null: no bytes). `expect` (a validator,
 * src/import/validator.ts) makes the GET conditional: If-Match on the ETag,
 * If-Unmodified-Since for a Last-Modified one; 412 is TierError 'Changed' whose message
 * names the object's current ETag (one HEAD, best effort).
 */
async function openBody(g: GetContext, key: string, objKey: string, range: ByteRange | undefined, signal?: AbortSignal, expect?: string): Promise<OpenBody | null> {
  const c: CallContext = { op: 'get', tier: g.tier, key, bucket: g.bucket, timeoutMs: g.timeoutMs };
  if (range && range.length <= 0) {
    // Nothing to read, but a missing key is still NotFound.
    await callS3(c, signal, (s) => g.hot.head(g.bucket, objKey, s));
    return null;
  }
  const Range = range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined;
  const v = expect !== undefined ? parseValidator(expect) : null;
  if (expect !== undefined && !v) throw new TierError('Changed', 'get', g.tier, key, `unusable validator ${JSON.stringify(expect)}`);
  const cond = v?.kind === 'etag' ? { IfMatch: v.etag } : v?.kind === 'lm' ? { IfUnmodifiedSince: new Date(v.ms + 999) } : {};
  let res;
  try {
    res = await callS3(c, signal, (s) => g.hot.get({ Bucket: g.bucket, Key: objKey, Range, ...cond }, s));
  } catch (e) {
    if (isInvalidRange(e)) return null; // offset at or past the end
    if (v && isPreconditionFailed(e)) throw await changedError(g, c, key, objKey, expect!, signal);
    throw e;
  }
  if (v?.kind === 'etag' && res.ETag !== undefined && res.ETag !== v.etag) {
    res.Body && (res.Body as Readable).destroy?.();
    throw new TierError('Changed', 'get', g.tier, key, `object is ${res.ETag}, expected ${v.etag}`);
  }
  const body = res.Body as Readable | undefined;
  if (!body) return null;
  let want = res.ContentLength ?? -1;
  let skip = 0;
  if (range && !res.ContentRange) {
    // The server ignored Range and sent the whole object: cut the range out of it.
    skip = range.offset;
    want = Math.max(0, Math.min(range.length, (res.ContentLength ?? 0) - range.offset));
  } else if (range) {
    // `bytes a-b/c`: from the range's first byte, as many as the body, no more than asked.
    const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.ContentRange ?? '');
    const n = cr ? Number(cr[2]) - Number(cr[1]) + 1 : -1;
    if (!cr || Number(cr[1]) !== range.offset || n > range.length || (res.ContentLength !== undefined && n !== res.ContentLength)) {
      body.destroy();
      throw new TierError('Unavailable', 'get', g.tier, key, `Content-Range ${JSON.stringify(res.ContentRange)} with Content-Length ${res.ContentLength} does not answer range ${range.offset}+${range.length}`);
    }
  }
  return { c, body, want, skip, contentLength: res.ContentLength ?? -1 };
}

function isPreconditionFailed(e: unknown): boolean {
  const cause = (e as { cause?: { name?: string; $metadata?: { httpStatusCode?: number } } })?.cause;
  return cause?.name === 'PreconditionFailed' || cause?.$metadata?.httpStatusCode === 412;
}

async function changedError(g: GetContext, c: CallContext, key: string, objKey: string, expect: string, signal?: AbortSignal): Promise<TierError> {
  let now = 'unknown';
  try {
    const h = await callS3({ ...c, op: 'stat' }, signal, (s) => g.hot.head(g.bucket, objKey, s));
    now = h.ETag ? `etag:${h.ETag}` : h.LastModified ? `lm:${h.LastModified.getTime()}` : 'unknown';
  } catch (e) {
    if ((e as TierError).code === 'NotFound') now = 'deleted';
  }
  return new TierError('Changed', 'get', g.tier, key, `object changed since import: expected ${expect}, now ${now}`);
}

function isInvalidRange(e: unknown): boolean {
  const cause = (e as { cause?: { name?: string; $metadata?: { httpStatusCode?: number } } })?.cause;
  return cause?.name === 'InvalidRange' || cause?.$metadata?.httpStatusCode === 416;
}

/**
 * What of each body chunk belongs to the range (`skip` body bytes before it when the server
 * ignored Range, `want` bytes of it, -1: all), and whether the body was as long as its
 * Content-Length (-1: unknown). Shared by the streaming and the buffered reads.
 */
class BodyCut {
  private seen = 0; // bytes of the HTTP body
  sent = 0;
  constructor(
    private readonly want: number,
    private readonly skip: number,
    private readonly contentLength: number,
  ) {}

  /** The part of `chunk` in the range (empty: none of it). */
  piece(chunk: Buffer): Buffer {
    const from = Math.max(0, this.skip - this.seen);
    this.seen += chunk.length;
    const room = this.want >= 0 ? this.want - this.sent : chunk.length;
    if (room <= 0 || from >= chunk.length) return chunk.subarray(0, 0);
    const piece = from === 0 && room >= chunk.length ? chunk : chunk.subarray(from, from + room);
    this.sent += piece.length;
    return piece;
  }

  /** Why the body is not whole (null: it is), once it has ended. */
  short(): string | null {
    return this.contentLength >= 0 && this.seen !== this.contentLength ? `response body ended after ${this.seen} of ${this.contentLength} bytes` : null;
  }
}

/** BodyCut as a stream stage: a body shorter than its Content-Length is an error, not data. */
class BodyCheck extends Transform {
  constructor(
    private readonly cut: BodyCut,
    private readonly fail: (detail: string) => Error,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    const piece = this.cut.piece(chunk);
    cb(null, piece.length ? piece : undefined);
  }
  override _flush(cb: TransformCallback): void {
    const short = this.cut.short();
    cb(short === null ? undefined : this.fail(short));
  }
}
