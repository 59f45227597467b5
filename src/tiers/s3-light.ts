// The S3 tier's light request path for its hot small requests (single PUT, HEAD, ranged GET):
// one SigV4-signed request (@smithy/signature-v4, node:crypto hashes) on the tier's own
// keep-alive agents, instead of the SDK's middleware stack (41% of the daemon's CPU when
// releasing small files, bench 7). Rules it keeps:
// - Nothing of its own to configure: endpoint, path style, signing region and service are
//   taken once from the SDK itself (a HEAD built by the tier's own S3Client and stopped just
//   after signing, never sent); credentials are the client's resolved provider (refresh
//   included). Anything that probe shows we do not reproduce (SigV4a, S3 Express sessions)
//   leaves the tier on the SDK.
// - The SDK's behaviour where it matters: errors shaped as SDK errors (name = S3 error code,
//   $metadata.httpStatusCode) so s3-errors.ts maps both alike; the same retries (MAX_ATTEMPTS,
//   transient errors only, exponential backoff with jitter); the caller's signal aborts the
//   request; an idle socket (timeoutMs without a byte) fails with TimeoutError, also while a
//   response body streams.
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { MAX_ATTEMPTS } from './s3-client.js';

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const PROBE_KEY = 'p';
const RETRY_STATUS = new Set([500, 502, 503, 504, 429]);
const RETRY_NAMES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestTimeoutException', 'InternalError', 'ServiceUnavailable', 'TimeoutError']);
const RETRY_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'EAI_AGAIN']);

/** Where and how requests for this bucket go, as the SDK resolved it. */
export interface Target {
  https: boolean;
  hostname: string;
  port?: number;
  host: string; // Host header
  pathPrefix: string; // path before the encoded object key ('/bucket/' or '/')
  signer: SignatureV4;
}

/** An S3 error response as the SDK would shape it (s3-errors.ts reads name and $metadata). */
export class S3HttpError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(name: string, status: number, message: string) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

/** SDK key encoding: each path segment percent-encoded, '/' kept. */
export function encodeKey(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

export interface LightRequest {
  method: 'GET' | 'HEAD' | 'PUT';
  objKey: string;
  headers: Record<string, string>;
  body?: Buffer;
  payloadSha256: string; // hex SHA-256 of the body (signed: the server checks it)
  /** Statuses answered as data rather than errors (2xx always). */
  accept?: readonly number[];
}

export class S3Light {
  private target: Promise<Target | null> | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly agents: [HttpAgent, HttpsAgent],
    private readonly bucket: string,
    private readonly timeoutMs: number,
  ) {}

  /** null when the SDK signs this bucket in a way we do not reproduce: use the SDK. */
  usable(): Promise<Target | null> {
    this.target ??= probe(this.client, this.bucket).catch((e) => {
      this.target = undefined; // no credentials yet, say: ask again next time
      throw e;
    });
    return this.target;
  }

  /** Sends one request (retrying transient failures); resolves with the response, body unread. */
  async send(r: LightRequest, signal: AbortSignal): Promise<IncomingMessage> {
    const t = await this.usable();
    if (!t) throw new Error('s3-light: not usable for this bucket'); // callers check usable() first
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.once(t, r, signal);
        if (res.statusCode! < 300 || r.accept?.includes(res.statusCode!)) return res;
        throw await errorOf(res, r.method);
      } catch (e) {
        if (signal.aborted || attempt >= MAX_ATTEMPTS || !retryable(e)) throw e;
        await backoff(attempt, e, signal);
      }
    }
  }

  private async once(t: Target, r: LightRequest, signal: AbortSignal): Promise<IncomingMessage> {
    const { path, headers } = await signRequest(t, r);
    signal.throwIfAborted();
    return new Promise<IncomingMessage>((resolve, reject) => {
      const opts = { method: r.method, hostname: t.hostname, port: t.port, path, headers, signal, agent: t.https ? this.agents[1] : this.agents[0] };
      const req = t.https ? httpsRequest(opts) : httpRequest(opts);
      let res: IncomingMessage | undefined;
      req.setTimeout(this.timeoutMs, () => {
        const err = Object.assign(new Error(`no byte from the server for ${this.timeoutMs} ms`), { name: 'TimeoutError', code: 'ETIMEDOUT' });
        if (res) res.destroy(err); // the body stream fails with it
        req.destroy(err);
      });
      req.once('error', reject);
      req.once('response', (m) => {
        res = m;
        resolve(m);
      });
      req.end(r.body);
    });
  }
}

/** The request's path and its signed headers. */
export async function signRequest(t: Target, r: LightRequest): Promise<{ path: string; headers: Record<string, string> }> {
  const path = t.pathPrefix + encodeKey(r.objKey);
  const headers: Record<string, string> = { ...r.headers, host: t.host, 'x-amz-content-sha256': r.payloadSha256 };
  if (r.body) headers['content-length'] = String(r.body.length);
  const signed = await t.signer.sign({ method: r.method, protocol: t.https ? 'https:' : 'http:', hostname: t.hostname, port: t.port, path, query: {}, headers });
  return { path, headers: signed.headers };
}

/** Builds a HEAD with the tier's own client and stops it right after signing. */
async function probe(client: S3Client, bucket: string): Promise<Target | null> {
  const cmd = new HeadObjectCommand({ Bucket: bucket, Key: PROBE_KEY });
  const seen: { req?: { protocol: string; hostname: string; port?: number; path: string; headers: Record<string, string> } } = {};
  const stop = new Error('s3-light probe');
  cmd.middlewareStack.add(
    () => async (args) => {
      seen.req = args.request as typeof seen.req;
      throw stop;
    },
    { step: 'finalizeRequest', priority: 'low', name: 'tierLightProbe' },
  );
  try {
    await client.send(cmd);
  } catch (e) {
    if (e !== stop) throw e;
  }
  const q = seen.req;
  if (!q || !q.path.endsWith(`/${PROBE_KEY}`)) return null;
  const auth = q.headers.authorization ?? '';
  const scope = /^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(auth);
  const known = new Set(['host', 'authorization', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token', 'x-amz-user-agent', 'user-agent', 'amz-sdk-invocation-id', 'amz-sdk-request']);
  if (!scope || Object.keys(q.headers).some((h) => !known.has(h.toLowerCase()))) return null;
  const https = q.protocol === 'https:';
  const defaultPort = q.port === undefined || q.port === (https ? 443 : 80);
  return {
    https,
    hostname: q.hostname,
    ...(defaultPort ? {} : { port: q.port }),
    host: defaultPort ? q.hostname : `${q.hostname}:${q.port}`,
    pathPrefix: q.path.slice(0, -PROBE_KEY.length),
    signer: new SignatureV4({
      credentials: (client.config as unknown as { credentials: () => Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }> }).credentials,
      region: scope[1]!,
      service: scope[2]!,
      sha256: NodeSha256,
      uriEscapePath: false, // S3: the key is encoded once, as sent
      applyChecksum: false,
    }),
  };
}

/** @smithy Checksum over node:crypto (SHA-256, or HMAC-SHA256 with a secret). */
class NodeSha256 {
  private h: Hash | Hmac;
  private readonly secret: Uint8Array | string | undefined;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.secret = bytes(secret);
    this.h = this.fresh();
  }
  private fresh(): Hash | Hmac {
    return this.secret !== undefined ? createHmac('sha256', this.secret) : createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data)!);
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
  reset(): void {
    this.h = this.fresh();
  }
}

function bytes(d: string | ArrayBuffer | ArrayBufferView | undefined): Uint8Array | string | undefined {
  if (d === undefined || typeof d === 'string' || d instanceof Uint8Array) return d;
  return ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d);
}

/** The SDK's error for a non-2xx answer: name from the XML body's <Code>, else from the status. */
async function errorOf(res: IncomingMessage, method: string): Promise<S3HttpError> {
  const status = res.statusCode ?? 0;
  let text = '';
  if (method !== 'HEAD') {
    const parts: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res as AsyncIterable<Buffer>) if ((n += c.length) <= 64 * 1024) parts.push(c);
    } catch {
      // a cut error body: the status still says what happened
    }
    text = Buffer.concat(parts).toString('utf8');
  } else res.resume();
  return errorFrom(status, text, res.statusMessage);
}

/** errorOf from a status and the error body's text. */
export function errorFrom(status: number, text: string, statusMessage?: string): S3HttpError {
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
  const msg = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  const byStatus: Record<number, string> = { 304: 'NotModified', 400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound', 412: 'PreconditionFailed', 416: 'InvalidRange' };
  const name = code || byStatus[status] || `HTTP${status}`;
  return new S3HttpError(name, status, msg || (code ? name : `${statusMessage ?? ''}`.trim() || 'UnknownError'));
}

export function retryable(e: unknown): boolean {
  const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  if (err.$metadata?.httpStatusCode !== undefined) return RETRY_STATUS.has(err.$metadata.httpStatusCode) || RETRY_NAMES.has(err.name ?? '');
  if (err.name === 'AbortError') return false;
  return RETRY_NAMES.has(err.name ?? '') || RETRY_CODES.has(err.code ?? '') || /socket hang up/i.test(err.message ?? '');
}

/** The SDK's standard backoff: full jitter on 100 ms x 2^n (500 ms base when throttled), at most 20 s. */
export function backoff(attempt: number, e: unknown, signal: AbortSignal): Promise<void> {
  const s = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const base = s === 429 || s === 503 ? 500 : 100;
  const ms = Math.random() * Math.min(20_000, base * 2 ** (attempt - 1));
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', done);
      resolve();
    }, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
