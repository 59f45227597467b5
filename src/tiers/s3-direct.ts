// The S3 tier's ranged GET straight into the caller's buffer (Tier.getInto: recall's cold
// stream). One request signed as s3-light signs it, on a keep-alive TCP socket of our own
// whose reads land in the destination buffer itself (net.Socket `onread`): no HTTP parser
// over the body, no body stream, no 64 KiB chunk allocated and copied per read. Per 512 MiB
// the node:http body cost ~0.4 s of the event loop (parser callbacks, a Buffer per chunk and
// the garbage they left, the copy into the run buffer); here a read is one callback that
// counts bytes. Plain http only: an https endpoint (or a bucket the light path cannot sign)
// stays on s3-light / the SDK. Rules it keeps:
// - a 2xx answer needs a Content-Length (a chunked one: FallBack, the caller asks s3-light);
//   the range's bytes go into dst; a body longer than dst is an error before a byte lands, a
//   body cut before its Content-Length is an error, never short data;
// - a 206 must carry `Content-Range: bytes a-b/c` with a = the range's offset and b-a+1 =
//   its Content-Length; any other 2xx (a 200, with a Content-Range or not) is the whole
//   object, the range cut out of it; a Content-Length not all digits, or two that differ,
//   is an error and the socket is never reused; interim 1xx answers (not 101) are dropped;
// - a socket goes back to the pool on the loop's next turn, not from inside the read that
//   ended an answer: a byte that arrives meanwhile destroys it (never the next GET's head);
// - any other status: the error the SDK would raise (s3-light errorFrom), retried as
//   s3-light retries (transient errors, before any answer), 416 is "no bytes" (0);
// - a reused keep-alive socket closed or reset (ECONNRESET, EPIPE, end) before any answer
//   byte is retried on a fresh one (the server closed it while idle), without counting as
//   an attempt; a timeout or an abort is not;
// - timeoutMs without a byte fails the GET (TimeoutError); the caller's signal destroys the
//   socket; a socket is pooled again only after a whole answer, any error destroys it, so
//   nothing writes into dst after the promise settles with an error... except a read the
//   kernel already finished into it, which is why callers drop a failed GET's buffer.
import { connect, type Socket } from 'node:net';
import { MAX_ATTEMPTS } from './s3-client.js';
import { backoff, EMPTY_SHA256, errorFrom, retryable, signRequest, type S3Light, type Target } from './s3-light.js';
import type { ByteRange, Progress } from './tier.js';

const HEAD_MAX = 16 * 1024; // response head (and an error body) read into this
const CRLF2 = Buffer.from('\r\n\r\n');

/** The answer is one this path does not read (chunked 2xx body): ask s3-light instead. */
export class FallBack extends Error {}

/** A failure of the GET itself (body too long or cut): `detail` for the caller's TierError. */
export class BodyError extends Error {}

interface Want {
  range: ByteRange;
  /** The answer's head is in: a 2xx body follows (the caller's deadline ends, the idle timeout goes on). */
  started: (() => void) | undefined;
  dst: Buffer;
  progress: Progress | undefined;
  resolve(n: number): void;
  reject(e: unknown): void;
}

/** One socket and the answer it is reading (null: idle in the pool). */
class Conn {
  readonly sock: Socket;
  private readonly head = Buffer.allocUnsafe(HEAD_MAX);
  private headLen = 0;
  private w: Want | null = null;
  private reused = false;
  // The body: [0, len) of which [skip, skip + want) goes to dst; seen: body bytes read.
  private body: { len: number; skip: number; want: number; seen: number; status: number; keep: boolean; text: boolean } | null = null;
  dead = false;

  constructor(
    t: Target,
    private readonly pool: S3Direct,
  ) {
    this.sock = connect({ host: t.hostname.replace(/^\[(.*)\]$/, '$1'), port: t.port ?? 80, onread: { buffer: () => this.next(), callback: (n: number) => (this.got(n), true) } });
    this.sock.setNoDelay(true);
    this.sock.on('error', (e) => this.die(e));
    this.sock.on('close', () => this.die(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })));
    this.sock.on('timeout', () => this.sock.destroy(Object.assign(new Error(`no byte from the server for ${pool.timeoutMs} ms`), { name: 'TimeoutError', code: 'ETIMEDOUT' })));
  }

  /** Sends the request; the answer settles `w`. */
  start(req: string, w: Want, reused: boolean): void {
    this.w = w;
    this.reused = reused;
    this.headLen = 0;
    this.body = null;
    this.sock.ref();
    this.sock.setTimeout(this.pool.timeoutMs);
    this.sock.write(req, 'latin1');
  }

  abort(e: unknown): void {
    this.sock.destroy(e as Error);
  }

  /** Where the next read lands: dst inside the range, the head buffer anywhere else. */
  private next(): Uint8Array {
    const b = this.body;
    if (!b || b.text) return this.head.subarray(Math.min(this.headLen, HEAD_MAX - 1));
    const s = b.seen;
    if (s < b.skip) return this.head.subarray(0, Math.min(HEAD_MAX, b.skip - s));
    if (s < b.skip + b.want) return this.w!.dst.subarray(s - b.skip, b.want);
    if (s < b.len) return this.head.subarray(0, Math.min(HEAD_MAX, b.len - s));
    return this.head; // nothing is expected: any byte is an error (got)
  }

  private got(n: number): void {
    const w = this.w;
    if (!w) return void this.sock.destroy(new Error('bytes from the server with no request')); // idle
    const b = this.body;
    if (!b || b.text) {
      this.headLen += n;
      if (!b) return this.parseHead(w);
      if (this.headLen - b.skip >= b.len || this.headLen >= HEAD_MAX) this.endText(w, b);
      return;
    }
    b.seen += n;
    if (w.progress && b.seen > b.skip) w.progress(Math.min(b.seen - b.skip, b.want));
    if (b.seen > b.len) return void this.sock.destroy(new BodyError(`response body longer than its Content-Length ${b.len}`));
    if (b.seen === b.len) this.finish(w, b.want, b.keep);
  }

  private parseHead(w: Want): void {
    const end = this.head.subarray(0, this.headLen).indexOf(CRLF2);
    if (end < 0) {
      if (this.headLen >= HEAD_MAX - 1) this.sock.destroy(new BodyError('response head too large'));
      return;
    }
    const lines = this.head.toString('latin1', 0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? NaN);
    if (!Number.isFinite(status)) return void this.sock.destroy(new BodyError('not an HTTP answer'));
    if (status >= 100 && status < 200 && status !== 101) {
      // An interim answer (100 Continue, 103 Early Hints): dropped, the real one follows.
      this.head.copy(this.head, 0, end + 4, this.headLen);
      this.headLen -= end + 4;
      return this.parseHead(w);
    }
    const h: Record<string, string> = {};
    for (let k = 1; k < lines.length; k++) {
      const c = lines[k]!.indexOf(':');
      if (c <= 0) continue;
      const name = lines[k]!.slice(0, c).trim().toLowerCase();
      const v = lines[k]!.slice(c + 1).trim();
      // Two lengths or ranges that differ: which body is this? (request smuggling's trick)
      if (h[name] !== undefined && h[name] !== v && (name === 'content-length' || name === 'content-range')) return void this.sock.destroy(new BodyError(`differing ${name} headers`));
      h[name] = v;
    }
    const cl = h['content-length'];
    if (cl !== undefined && !/^\d+$/.test(cl)) return void this.sock.destroy(new BodyError(`bad Content-Length ${JSON.stringify(cl.slice(0, 40))}`));
    const len = cl !== undefined ? Number(cl) : -1;
    const keep = !/close/i.test(h.connection ?? '');
    const rest = this.head.subarray(end + 4, this.headLen); // body bytes read with the head
    if (status < 200 || status >= 300) {
      // An error (or 416) body: read into the head buffer, after the head.
      this.body = { len, skip: end + 4, want: 0, seen: 0, status, keep: keep && len >= 0 && end + 4 + len <= HEAD_MAX, text: true };
      if (len < 0 || rest.length >= len || this.headLen >= HEAD_MAX) this.endText(w, this.body);
      return;
    }
    if (len < 0 || h['transfer-encoding'] !== undefined) return void this.sock.destroy(new FallBack('a 2xx answer without a Content-Length'));
    let skip = 0;
    let want = len;
    if (status === 206) {
      // Partial content: exactly the bytes asked for from the range's first, or fewer at the end.
      const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(h['content-range'] ?? '');
      if (!cr || Number(cr[1]) !== w.range.offset || Number(cr[2]) - Number(cr[1]) + 1 !== len) {
        return void this.sock.destroy(new BodyError(`Content-Range ${JSON.stringify((h['content-range'] ?? '').slice(0, 80))} with Content-Length ${len} does not answer range ${w.range.offset}+${w.range.length}`));
      }
    } else {
      // Any other 2xx is the whole object (the server ignored Range): cut the range out of it.
      skip = w.range.offset;
      want = Math.max(0, Math.min(w.range.length, len - skip));
    }
    if (want > w.range.length || want > w.dst.length) return void this.sock.destroy(new BodyError(`range ${w.range.offset}+${w.range.length} answered more bytes`));
    const b = (this.body = { len, skip, want, seen: 0, status, keep, text: false });
    w.started?.();
    // Body bytes that came with the head: into dst where they belong (at most HEAD_MAX).
    const take = Math.min(rest.length, len);
    const a = Math.max(0, Math.min(skip, take));
    const z = Math.max(a, Math.min(skip + want, take));
    if (z > a) rest.copy(w.dst, a - skip, a, z);
    b.seen = take;
    if (w.progress && z > skip) w.progress(z - skip);
    if (rest.length > len) return void this.sock.destroy(new BodyError(`response body longer than its Content-Length ${len}`));
    if (b.seen === len) this.finish(w, want, keep);
  }

  private endText(w: Want, b: NonNullable<Conn['body']>): void {
    const text = this.head.toString('utf8', b.skip, Math.min(this.headLen, b.len >= 0 ? b.skip + b.len : this.headLen));
    const whole = b.len >= 0 && this.headLen - b.skip === b.len;
    if (b.status === 416) this.finish(w, 0, b.keep && whole);
    else this.finish(w, errorFrom(b.status, text), b.keep && whole);
  }

  /** The answer is over: `r` bytes, or an error; the socket back to the pool if it may be reused. */
  private finish(w: Want, r: number | Error, keep: boolean): void {
    this.w = null;
    this.body = null;
    this.headLen = 0;
    this.sock.setTimeout(0);
    // Pooled from the next turn of the loop, not from inside this read: a byte that comes
    // meanwhile (more body than was said) destroys it (got: no request) instead of being
    // read as the next GET's answer.
    if (keep && !this.dead) setImmediate(() => this.dead || this.w || this.pool.idle(this));
    else this.sock.destroy();
    if (typeof r === 'number') w.resolve(r);
    else w.reject(r);
  }

  private die(e: unknown): void {
    if (this.dead) return;
    this.dead = true;
    this.pool.gone(this);
    const w = this.w;
    if (!w) return;
    this.w = null;
    const b = this.body;
    // Nothing of an answer on a reused socket, closed or reset: the server closed it while
    // idle (not a timeout nor an abort: those are the GET's own end).
    const code = (e as { code?: string }).code;
    if (this.reused && this.headLen === 0 && !b && (code === 'ECONNRESET' || code === 'EPIPE')) return w.reject(Object.assign(new Error('stale keep-alive socket'), { stale: true, cause: e }));
    if (b && !b.text && !(e instanceof Error && e.name === 'TimeoutError') && !(e instanceof BodyError) && !(e instanceof FallBack) && (e as { name?: string }).name !== 'AbortError') {
      return w.reject(new BodyError(`response body ended after ${b.seen} of ${b.len} bytes`));
    }
    w.reject(b ? Object.assign(e as Error, { answered: true }) : e);
  }
}

export class S3Direct {
  private readonly free: Conn[] = [];
  private closed = false;

  constructor(
    private readonly light: S3Light,
    readonly timeoutMs: number,
    private readonly keep: number,
  ) {}

  /** The target when this path can serve the bucket (plain http, signed by s3-light), else null. */
  async target(): Promise<Target | null> {
    const t = await this.light.usable();
    return t && !t.https ? t : null;
  }

  /**
   * `range` of `objKey` into dst from its start: the bytes written (fewer than asked: the
   * object ends first). Throws FallBack when the answer is one to read with s3-light.
   */
  async getInto(t: Target, objKey: string, range: ByteRange, dst: Buffer, signal: AbortSignal, progress?: Progress, started?: () => void): Promise<number> {
    const { path, headers } = await signRequest(t, { method: 'GET', objKey, headers: { range: `bytes=${range.offset}-${range.offset + range.length - 1}` }, payloadSha256: EMPTY_SHA256 });
    let req = `GET ${path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
    req += '\r\n';
    for (let attempt = 1; ; ) {
      try {
        return await this.once(t, req, range, dst, signal, progress, started);
      } catch (e) {
        if ((e as { stale?: boolean }).stale && !signal.aborted) continue; // a fresh socket, same attempt
        if (signal.aborted || attempt >= MAX_ATTEMPTS || (e as { answered?: boolean }).answered || e instanceof BodyError || e instanceof FallBack || !retryable(e)) throw e;
        await backoff(attempt++, e, signal);
      }
    }
  }

  private once(t: Target, req: string, range: ByteRange, dst: Buffer, signal: AbortSignal, progress: Progress | undefined, started: (() => void) | undefined): Promise<number> {
    signal.throwIfAborted();
    const reused = this.free.pop();
    const c = reused ?? new Conn(t, this);
    return new Promise<number>((resolve, reject) => {
      const onAbort = () => c.abort(Object.assign(new Error('The operation was aborted'), { name: 'AbortError' }));
      signal.addEventListener('abort', onAbort, { once: true });
      const done = () => signal.removeEventListener('abort', onAbort);
      c.start(req, { range, dst, progress, started, resolve: (n) => (done(), resolve(n)), reject: (e) => (done(), reject(e)) }, reused !== undefined);
    });
  }

  /** A socket after a whole answer: kept for the next GET (at most `keep` idle). */
  idle(c: Conn): void {
    if (this.closed || this.free.length >= this.keep) return void c.sock.destroy();
    c.sock.unref();
    this.free.push(c);
  }

  gone(c: Conn): void {
    const k = this.free.indexOf(c);
    if (k >= 0) this.free.splice(k, 1);
  }

  close(): void {
    this.closed = true;
    for (const c of this.free.splice(0)) c.sock.destroy();
  }
}
