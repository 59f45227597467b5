// A Tier seen through its rate limits as one class of traffic (src/tiers/limiter.ts).
// Every tier of a policy with limits has two views over the same inner tier and limiter:
// 'interactive' for the recall service, 'batch' for migration and gc.
//
// Charging: each call costs one request before it starts (list: one per page of 1000
// keys; a multipart put one for create, one per part as its bytes go, one for complete); bytes are charged as they move: put bodies and getStream bodies per piece of at
// most 256 KiB and at most one second of rate (so a recall never waits behind more than
// one batch piece, and a paced S3 stream never idles past its socket timeout), get(range) by
// the range length before the call (whole object: by the bytes returned, after it).
// Batch calls also take a slot among the batch calls in flight for as long as they run.
// Waits honour the caller's AbortSignal (TierError 'Aborted'). Closing any view closes the
// inner tier once and fails the waits.
import { Readable } from 'node:stream';
import type { TierTuning } from '../dsl/ast.js';
import { LimiterAborted, type Cost, type LimitClass, type Limiter } from './limiter.js';
import { readInto, TierError, type ByteRange, type Progress, type ObjectInfo, type ObjectMeta, type PutResult, type Tier } from './tier.js';

export const PIECE = 256 * 1024;
const MIN_PIECE = 4096;
const LIST_PAGE = 1000;

export interface TierViews {
  interactive: Tier;
  batch: Tier;
  limiter: Limiter;
}

/** Both views of `inner`, sharing `limiter` and one close. */
export function throttledViews(inner: Tier, limiter: Limiter): TierViews {
  let closing: Promise<void> | null = null;
  const close = () => {
    if (!closing) {
      limiter.close();
      closing = inner.close();
    }
    return closing;
  };
  return {
    interactive: new ThrottledTier(inner, limiter, 'interactive', close),
    batch: new ThrottledTier(inner, limiter, 'batch', close),
    limiter,
  };
}

export class ThrottledTier implements Tier {
  constructor(
    readonly inner: Tier,
    readonly limiter: Limiter,
    readonly cls: LimitClass,
    private readonly closeShared: () => Promise<void> = () => inner.close(),
  ) {}

  get name(): string {
    return this.inner.name;
  }
  get kind(): Tier['kind'] {
    return this.inner.kind;
  }
  get tuning(): TierTuning | undefined {
    return this.inner.tuning;
  }

  put(key: string, body: Readable, size: number, meta: ObjectMeta, signal?: AbortSignal): Promise<PutResult> {
    return this.call('put', key, signal, async () => {
      // A multipart put is charged as the server sees it, a request per part as its bytes
      // go, not all up front: a 4 GiB upload must not leave a debt every recall waits out.
      const part = multipartPartSize(this.inner, size);
      await this.charge('put', key, { requests: 1 }, signal);
      const r = await this.inner.put(key, this.metered(body, 'put', key, signal, part), size, meta, signal);
      // The complete request: the object exists now, so this wait must not abort the put
      // (an abort here would fail a release whose copy is whole and leave it orphaned).
      if (part) await this.charge('put', key, { requests: 1 }, undefined);
      return r;
    });
  }

  get(key: string, range?: ByteRange, signal?: AbortSignal, expect?: string): Promise<Buffer> {
    return this.call('get', key, signal, async () => {
      await this.charge('get', key, { requests: 1, bytes: range?.length ?? 0 }, signal);
      const buf = await this.inner.get(key, range, signal, expect);
      if (!range) await this.charge('get', key, { bytes: buf.length }, signal);
      return buf;
    });
  }

  getInto(key: string, range: ByteRange, dst: Buffer, signal?: AbortSignal, expect?: string, progress?: Progress): Promise<number> {
    return this.call('get', key, signal, async () => {
      await this.charge('get', key, { requests: 1, bytes: range.length }, signal);
      return readInto(this.inner, key, range, dst, signal, expect, progress);
    });
  }

  async getStream(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const release = await this.slot('get', key, signal);
    try {
      await this.charge('get', key, { requests: 1 }, signal);
      const s = this.metered(await this.inner.getStream(key, range, signal), 'get', key, signal);
      s.once('close', release); // the stream holds its connection until it is done
      return s;
    } catch (e) {
      release();
      throw e;
    }
  }

  stat(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    return this.call('stat', key, signal, async () => {
      await this.charge('stat', key, { requests: 1 }, signal);
      return this.inner.stat(key, signal);
    });
  }

  delete(key: string, signal?: AbortSignal): Promise<void> {
    return this.call('delete', key, signal, async () => {
      await this.charge('delete', key, { requests: 1 }, signal);
      return this.inner.delete(key, signal);
    });
  }

  /** The slot is held only while a page is fetched, never while the caller works on an item. */
  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    const it = this.inner.list(prefix, signal)[Symbol.asyncIterator]();
    try {
      for (let n = 0; ; n++) {
        const next = await this.call('list', prefix, signal, async () => {
          if (n % LIST_PAGE === 0) await this.charge('list', prefix, { requests: 1 }, signal);
          return it.next();
        });
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await it.return?.();
    }
  }

  async sweepTemp(maxAgeMs?: number, signal?: AbortSignal): Promise<number> {
    const inner = this.inner;
    if (!inner.sweepTemp) return 0;
    return this.call('sweep', '', signal, async () => {
      await this.charge('sweep', '', { requests: 1 }, signal);
      return inner.sweepTemp!(maxAgeMs, signal);
    });
  }

  close(): Promise<void> {
    return this.closeShared();
  }

  /** Runs `f` holding a batch slot (interactive calls take none). */
  private async call<T>(op: string, key: string, signal: AbortSignal | undefined, f: () => Promise<T>): Promise<T> {
    const release = await this.slot(op, key, signal);
    try {
      return await f();
    } finally {
      release();
    }
  }

  private async slot(op: string, key: string, signal: AbortSignal | undefined): Promise<() => void> {
    if (this.cls !== 'batch') return () => {};
    try {
      return await this.limiter.batchSlot(signal);
    } catch (e) {
      throw this.waitError(e, op, key);
    }
  }

  private async charge(op: string, key: string, cost: Cost, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.limiter.acquire(this.cls, cost, signal);
    } catch (e) {
      throw this.waitError(e, op, key);
    }
  }

  private waitError(e: unknown, op: string, key: string): unknown {
    if (!(e instanceof LimiterAborted)) return e;
    return new TierError('Aborted', op, this.name, key, `${e.message} while waiting for the tier's rate limit`);
  }

  /**
   * `body` paced piece by piece: bytes, and with `part` (a multipart put) one request as each
   * part begins. As is when there is nothing to charge. Destroying the result stops the pacing.
   */
  private metered(body: Readable, op: string, key: string, signal: AbortSignal | undefined, part?: number): Readable {
    const rate = this.limiter.bytesPerSec;
    const perPart = part !== undefined && this.limiter.requestsPerSec !== undefined;
    if (rate === undefined && !perPart) return body;
    const size = rate === undefined ? PIECE : Math.max(MIN_PIECE, Math.min(PIECE, Math.floor(rate)));
    let sent = 0;
    const cost = (len: number): Cost => {
      const c: Cost = rate === undefined ? {} : { bytes: len };
      // Part k begins at byte k * part: count the beginnings inside [sent, sent + len).
      if (perPart) c.requests = Math.ceil((sent + len) / part!) - Math.ceil(sent / part!);
      sent += len;
      return c;
    };
    const stop = new AbortController();
    const both = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const pace = async function* (self: ThrottledTier): AsyncGenerator<Buffer> {
      for await (const chunk of body as AsyncIterable<Buffer | string>) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        for (let at = 0; at < buf.length; at += size) {
          const piece = buf.subarray(at, at + size);
          await self.charge(op, key, cost(piece.length), both);
          yield piece;
        }
      }
    };
    const out = Readable.from(pace(this), { objectMode: false, highWaterMark: PIECE });
    out.once('close', () => {
      stop.abort();
      if (!body.destroyed) body.destroy();
    });
    return out;
  }
}

/** The part size when a put of `size` bytes is multipart (S3 `partSize`, above one part); else undefined. */
export function multipartPartSize(tier: Tier, size: number): number | undefined {
  const part = (tier as { partSize?: unknown }).partSize;
  return typeof part === 'number' && part > 0 && size > part ? part : undefined;
}

/** Requests a put makes in all: one, or create + parts + complete, as `tpslimit` counts them. */
export function putRequests(tier: Tier, size: number): number {
  const part = multipartPartSize(tier, size);
  return part === undefined ? 1 : Math.ceil(size / part) + 2;
}
