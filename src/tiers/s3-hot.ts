// The S3 tier's hot requests (HEAD, GET, single PUT), answered in the SDK's output shapes
// whichever path sends them: the light path (s3-light.ts) when the bucket allows it, else the
// SDK. TIER_S3_SDK_ONLY=1 keeps every request on the SDK (a safety valve; bench/s3-light.ts
// compares the two).
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type GetObjectCommandInput,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { EMPTY_SHA256, type S3Light } from './s3-light.js';

export interface HeadOut {
  ContentLength?: number;
  ETag?: string;
  LastModified?: Date;
  Metadata?: Record<string, string>;
}
export interface GetOut extends HeadOut {
  ContentRange?: string;
  Body?: Readable;
}
export interface PutIn {
  Bucket: string;
  Key: string;
  Body: Buffer;
  ContentMD5: string; // base64
  Sha256: string; // hex SHA-256 of Body (signs the payload)
  Metadata: Record<string, string>;
  StorageClass?: string;
}
type GetIn = Pick<GetObjectCommandInput, 'Bucket' | 'Key' | 'Range' | 'IfMatch' | 'IfUnmodifiedSince'>;

export class S3Hot {
  constructor(
    private readonly client: S3Client,
    private readonly light: S3Light | undefined,
  ) {}

  /** The light path, or undefined: the SDK then. */
  private async useLight(): Promise<S3Light | undefined> {
    return this.light && (await this.light.usable()) ? this.light : undefined;
  }

  /** Whether a put goes by the light path, which signs the payload's SHA-256 (the server checks it). */
  async signsPayload(): Promise<boolean> {
    try {
      return (await this.useLight()) !== undefined;
    } catch {
      return false; // the put itself reports why (no credentials, say)
    }
  }

  async head(Bucket: string, Key: string, signal: AbortSignal): Promise<HeadOut> {
    const l = await this.useLight();
    if (!l) return this.client.send(new HeadObjectCommand({ Bucket, Key }), { abortSignal: signal });
    const res = await l.send({ method: 'HEAD', objKey: Key, headers: {}, payloadSha256: EMPTY_SHA256 }, signal);
    res.resume();
    return outOf(res.headers);
  }

  async get(input: GetIn, signal: AbortSignal): Promise<GetOut> {
    const l = await this.useLight();
    if (!l) return this.client.send(new GetObjectCommand(input), { abortSignal: signal }) as Promise<GetOut>;
    const h: Record<string, string> = {};
    if (input.Range) h.range = input.Range;
    if (input.IfMatch) h['if-match'] = input.IfMatch;
    if (input.IfUnmodifiedSince) h['if-unmodified-since'] = new Date(input.IfUnmodifiedSince).toUTCString();
    const res = await l.send({ method: 'GET', objKey: input.Key!, headers: h, payloadSha256: EMPTY_SHA256 }, signal);
    // A Content-Range only on a 206: a 200 is the whole object whatever it says (s3-get.ts).
    return { ...outOf(res.headers), ...(res.statusCode === 206 && res.headers['content-range'] ? { ContentRange: res.headers['content-range'] } : {}), Body: res };
  }

  /** One PutObject with Content-MD5 (the server rejects other bytes); returns its ETag. */
  async put(input: PutIn, signal: AbortSignal): Promise<{ ETag?: string }> {
    const l = await this.useLight();
    if (!l) {
      const { Sha256: _, StorageClass, ...rest } = input;
      const cmd: PutObjectCommandInput = { ...rest, ContentLength: input.Body.length, ...(StorageClass ? { StorageClass: StorageClass as PutObjectCommandInput['StorageClass'] } : {}) };
      return this.client.send(new PutObjectCommand(cmd), { abortSignal: signal });
    }
    const h: Record<string, string> = { 'content-md5': input.ContentMD5 };
    for (const [k, v] of Object.entries(input.Metadata)) h[`x-amz-meta-${k}`] = v;
    if (input.StorageClass) h['x-amz-storage-class'] = input.StorageClass;
    const res = await l.send({ method: 'PUT', objKey: input.Key, headers: h, body: input.Body, payloadSha256: input.Sha256 }, signal);
    res.resume();
    return typeof res.headers.etag === 'string' ? { ETag: res.headers.etag } : {};
  }
}

/** HeadObject/GetObject output fields from response headers, as the SDK fills them. */
function outOf(h: IncomingHttpHeaders): HeadOut {
  const out: HeadOut = {};
  if (h['content-length'] !== undefined) out.ContentLength = Number(h['content-length']);
  if (typeof h.etag === 'string') out.ETag = h.etag;
  if (typeof h['last-modified'] === 'string') out.LastModified = new Date(h['last-modified']);
  let md: Record<string, string> | undefined;
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith('x-amz-meta-') && typeof v === 'string') (md ??= {})[k.slice(11)] = v;
  }
  if (md) out.Metadata = md;
  return out;
}
