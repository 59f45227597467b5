// A read-only tier over a plain HTTP(S) server with directory indexes (nginx or Apache
// autoindex): `tier NAME { http "https://mirror.example/pub/" }`. Only for `tier import`
// and recalls of the files it made; put/delete are refused (and `tier check` rejects
// archive/release to it).
//
// Rules:
// - list() walks the index pages depth first, one page in memory at a time, and asks a
//   HEAD of every file for its exact size, ETag and Last-Modified (index pages round them).
// - get() with a validator is conditional: If-Match on the ETag (If-Unmodified-Since for
//   Last-Modified), and the answer's own ETag/Last-Modified must match too (a server that
//   ignores the condition still cannot hand us another version): 'Changed', never bytes.
// - A server that ignores Range (200 to a ranged GET) gets whole-object reads, with one
//   warning per tier; the last whole body (up to WHOLE_CACHE_MAX) serves the next chunks.
// - Every request has the tier timeout; errors are TierError with the key.
import { Readable } from 'node:stream';
import type { HttpTierDecl, TierTuning } from '../dsl/ast.js';
import type { Logger } from '../log.js';
import { keyUrl, parseIndex } from './http-index.js';
import { TierError, type ByteRange, type ObjectInfo, type ObjectMeta, type PutResult, type Tier } from './tier.js';
import { parseValidator } from './validator.js';

const WHOLE_CACHE_MAX = 256 * 1024 * 1024;

export class HttpTier implements Tier {
  readonly kind = 'http' as const;
  readonly name: string;
  readonly tuning: TierTuning;
  private readonly base: string;
  /** Whether the server answers Range requests (found out by the first ranged GET). */
  private ranges: 'unknown' | 'yes' | 'no' = 'unknown';
  private probing: Promise<void> | null = null;
  private readonly wholeInflight = new Map<string, Promise<Buffer>>();
  private whole: { key: string; validator: string | undefined; body: Buffer } | null = null;
  /** Where the no-range warning goes (the daemon sets its logger); stderr otherwise. */
  log?: Logger;

  constructor(decl: HttpTierDecl) {
    this.name = decl.name;
    this.tuning = decl.tuning;
    this.base = decl.url.endsWith('/') ? decl.url : decl.url + '/';
  }

  async put(key: string, _b: Readable, _s: number, _m: ObjectMeta): Promise<PutResult> {
    throw new TierError('AccessDenied', 'put', this.name, key, 'http tiers are read-only (import only)');
  }

  async delete(key: string): Promise<void> {
    throw new TierError('AccessDenied', 'delete', this.name, key, 'http tiers are read-only (import only)');
  }

  async close(): Promise<void> {}

  async stat(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    const res = await this.fetch('stat', key, { method: 'HEAD' }, signal);
    if (res.status === 404) return null;
    if (!res.ok) throw this.statusError('stat', key, res.status);
    return infoOf(key, res.headers);
  }

  async get(key: string, range?: ByteRange, signal?: AbortSignal, expect?: string): Promise<Buffer> {
    if (range && range.length <= 0) return Buffer.alloc(0);
    if (range && this.ranges === 'unknown') {
      // The first ranged GET finds out whether the server does ranges; the others wait for it.
      if (this.probing) await this.probing;
      else {
        let done!: () => void;
        this.probing = new Promise<void>((r) => (done = r));
        try {
          return await this.getOnce(key, range, signal, expect);
        } finally {
          this.probing = null;
          done();
        }
      }
    }
    if (range && this.ranges === 'no') return slice(await this.wholeBody(key, signal, expect), range);
    return this.getOnce(key, range, signal, expect);
  }

  /** A server without ranges: one whole-body GET per object version, shared and kept (the last one). */
  private wholeBody(key: string, signal: AbortSignal | undefined, expect: string | undefined): Promise<Buffer> {
    const w = this.whole;
    if (w && w.key === key && w.validator === expect) return Promise.resolve(w.body);
    const id = `${key}\0${expect ?? ''}`;
    let p = this.wholeInflight.get(id);
    if (!p) {
      p = this.getOnce(key, undefined, signal, expect).finally(() => this.wholeInflight.delete(id));
      this.wholeInflight.set(id, p);
    }
    return p;
  }

  private async getOnce(key: string, range: ByteRange | undefined, signal?: AbortSignal, expect?: string): Promise<Buffer> {
    const v = expect !== undefined ? parseValidator(expect) : null;
    if (expect !== undefined && !v) throw new TierError('Changed', 'get', this.name, key, `unusable validator ${JSON.stringify(expect)}`);
    const headers: Record<string, string> = {};
    if (range) headers.range = `bytes=${range.offset}-${range.offset + range.length - 1}`;
    if (v?.kind === 'etag') headers['if-match'] = v.etag;
    if (v?.kind === 'lm') headers['if-unmodified-since'] = new Date(v.ms).toUTCString();
    const res = await this.fetch('get', key, { headers }, signal);
    if (res.status === 412) {
      await res.body?.cancel();
      throw await this.changed(key, expect!, signal);
    }
    if (res.status === 416) return Buffer.alloc(0);
    if (res.status === 404) throw new TierError('NotFound', 'get', this.name, key, `HTTP 404 from ${keyUrl(this.base, key)}`);
    if (res.status !== 200 && res.status !== 206) throw this.statusError('get', key, res.status);
    if (v) {
      const now = infoOf(key, res.headers);
      if (v.kind === 'etag' ? now.etag !== v.etag : now.lastModified?.getTime() !== v.ms) {
        await res.body?.cancel();
        throw new TierError('Changed', 'get', this.name, key, `object changed since import: expected ${expect}, now ${validatorOfInfo(now) ?? 'unknown'}`);
      }
    }
    const body = await this.readBody('get', key, res);
    if (range && res.status === 206) this.ranges = 'yes';
    if (!range) {
      if (body.length <= WHOLE_CACHE_MAX) this.whole = { key, validator: expect, body };
      return body;
    }
    if (res.status === 206) return body;
    // 200 to a ranged request: the server does not do ranges.
    if (this.ranges !== 'no') {
      this.ranges = 'no';
      const msg = 'http server ignores Range requests: recalls read whole objects';
      if (this.log) this.log.warn(msg, { op: 'get', tier: this.name, key });
      else process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'warn', msg, op: 'get', tier: this.name, key }) + '\n');
    }
    if (body.length <= WHOLE_CACHE_MAX) this.whole = { key, validator: expect, body };
    return slice(body, range);
  }

  async getStream(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    return Readable.from([await this.get(key, range, signal)]);
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    const cut = prefix.lastIndexOf('/');
    const stack: string[] = [cut > 0 ? prefix.slice(0, cut + 1) : ''];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      const res = await this.fetch('list', dir, {}, signal, this.base + dir.split('/').map(encodeURIComponent).join('/'));
      if (res.status === 404 && dir !== '') continue; // vanished while we walked
      if (!res.ok) throw this.statusError('list', dir, res.status);
      const entries = parseIndex(await res.text());
      const files = entries.filter((e) => !e.dir && (dir + e.name).startsWith(prefix)).map((e) => dir + e.name);
      const dirs = entries.filter((e) => e.dir && (prefix.startsWith(dir + e.name + '/') || (dir + e.name + '/').startsWith(prefix)));
      for (let i = dirs.length - 1; i >= 0; i--) stack.push(dir + dirs[i]!.name + '/');
      // HEADs a few at a time, yielded in page order.
      const n = Math.max(1, this.tuning.concurrency);
      for (let i = 0; i < files.length; i += n) {
        const infos = await Promise.all(files.slice(i, i + n).map((k) => this.stat(k, signal)));
        for (const info of infos) if (info) yield info;
      }
    }
  }

  private async fetch(op: string, key: string, init: RequestInit, signal?: AbortSignal, url = keyUrl(this.base, key)): Promise<Response> {
    const t = AbortSignal.timeout(this.tuning.timeoutMs);
    try {
      return await fetch(url, { ...init, redirect: 'follow', signal: signal ? AbortSignal.any([signal, t]) : t });
    } catch (e) {
      if (signal?.aborted) throw new TierError('Aborted', op, this.name, key, 'aborted by caller', { cause: e });
      if (t.aborted) throw new TierError('Timeout', op, this.name, key, `no answer within ${this.tuning.timeoutMs} ms from ${url}`, { cause: e });
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new TierError('Unavailable', op, this.name, key, `${url}: ${cause?.code ?? ''} ${cause?.message ?? (e as Error).message}`.trim(), { cause: e });
    }
  }

  private async readBody(op: string, key: string, res: Response): Promise<Buffer> {
    let body: Buffer;
    try {
      body = Buffer.from(await res.arrayBuffer());
    } catch (e) {
      throw new TierError('Unavailable', op, this.name, key, `response body cut: ${(e as Error).message}`, { cause: e });
    }
    const len = Number(res.headers.get('content-length') ?? -1);
    if (len >= 0 && body.length !== len) throw new TierError('Unavailable', op, this.name, key, `response body ended after ${body.length} of ${len} bytes`);
    return body;
  }

  private async changed(key: string, expect: string, signal?: AbortSignal): Promise<TierError> {
    let now = 'unknown';
    try {
      const info = await this.stat(key, signal);
      now = info ? (validatorOfInfo(info) ?? 'unknown') : 'deleted';
    } catch {
      /* best effort: the error is about the change */
    }
    return new TierError('Changed', 'get', this.name, key, `object changed since import: expected ${expect}, now ${now}`);
  }

  private statusError(op: string, key: string, status: number): TierError {
    const code = status === 401 || status === 403 ? 'AccessDenied' : status === 429 ? 'Throttled' : status >= 500 ? 'Unavailable' : 'Io';
    return new TierError(code, op, this.name, key, `HTTP ${status} from ${keyUrl(this.base, key)}`);
  }
}

function slice(body: Buffer, r: ByteRange): Buffer {
  return body.subarray(Math.min(r.offset, body.length), Math.min(r.offset + r.length, body.length));
}

function infoOf(key: string, h: Headers): ObjectInfo {
  const etag = h.get('etag');
  const lm = h.get('last-modified');
  const d = lm ? new Date(lm) : undefined;
  return {
    key,
    size: Number(h.get('content-length') ?? 0),
    ...(etag && !etag.startsWith('W/') ? { etag } : {}),
    ...(d && !Number.isNaN(d.getTime()) ? { lastModified: d } : {}),
  };
}

function validatorOfInfo(i: ObjectInfo): string | null {
  if (i.etag) return `etag:${i.etag}`;
  return i.lastModified ? `lm:${i.lastModified.getTime()}` : null;
}
