// S3 tier over any S3-compatible store (AWS S3, Ceph RGW, MinIO, Garage).
// Object `k` lives at `<prefix>k` in the bucket, with ObjectMeta as x-amz-meta-* (s3-meta.ts).
// put: s3-put.ts; get: s3-get.ts (ranged reads into a buffer: s3-direct.ts); client, timeouts
// and retries: s3-client.ts;
// HEAD, GET and single PUT go by the light request path (s3-hot.ts, s3-light.ts).
// Staging objects (multipart uploads awaiting their checksum) live under
// `<prefix>.tier-staging/` and never appear in list().
import { randomBytes } from 'node:crypto';
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { S3TierDecl, TierTuning } from '../dsl/ast.js';
import { silentLogger, type Logger } from '../log.js';
import { checkKey, checkPrefix, STAGING_DIR } from './keys.js';
import { callS3, makeS3Client, type CallContext } from './s3-client.js';
import { S3Direct } from './s3-direct.js';
import { S3Hot } from './s3-hot.js';
import { S3Light } from './s3-light.js';
import { s3Get, s3GetInto, s3GetStream, type GetContext } from './s3-get.js';
import { fromS3Metadata } from './s3-meta.js';
import { s3Put, type PutContext } from './s3-put.js';
import { TierError, type ByteRange, type Progress, type ObjectInfo, type ObjectMeta, type PutResult, type Tier } from './tier.js';

const MiB = 1024 * 1024;
export const MIN_PART_SIZE = 5 * MiB;
export const DEFAULT_PART_SIZE = 8 * MiB;
const DEFAULT_SWEEP_AGE_MS = 24 * 3600_000; // a multipart upload may legitimately run for hours

export interface S3TierOptions {
  /** Multipart part size and single-PUT threshold; default max(8 MiB, tuning.chunk), min 5 MiB. */
  partSize?: number;
  /** ListObjectsV2 MaxKeys (default 1000); tests use a small one to exercise paging. */
  listPageSize?: number;
  logger?: Logger;
}

export class S3Tier implements Tier {
  get tuning(): TierTuning {
    return this.decl.tuning;
  }
  readonly kind = 's3' as const;
  readonly name: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly partSize: number;
  private readonly client: S3Client;
  private readonly agents: [HttpAgent, HttpsAgent];
  private readonly put_: PutContext;
  private readonly get_: GetContext;
  private readonly pageSize: number;
  private readonly hot: S3Hot;
  private readonly direct: S3Direct | undefined;

  constructor(
    readonly decl: S3TierDecl,
    opts: S3TierOptions = {},
  ) {
    this.name = decl.name;
    this.bucket = decl.bucket;
    this.prefix = decl.prefix && !decl.prefix.endsWith('/') ? `${decl.prefix}/` : decl.prefix;
    this.partSize = Math.max(MIN_PART_SIZE, opts.partSize ?? Math.max(DEFAULT_PART_SIZE, decl.tuning.chunk));
    this.pageSize = Math.max(1, Math.min(1000, opts.listPageSize ?? 1000));
    ({ client: this.client, agents: this.agents } = makeS3Client(decl));
    const light = process.env.TIER_S3_SDK_ONLY === '1' ? undefined : new S3Light(this.client, this.agents, this.bucket, decl.tuning.timeoutMs);
    this.hot = new S3Hot(this.client, light);
    const base = { client: this.client, hot: this.hot, bucket: this.bucket, tier: this.name, timeoutMs: decl.tuning.timeoutMs };
    this.direct = light && process.env.TIER_S3_DIRECT !== '0' ? new S3Direct(light, decl.tuning.timeoutMs, 2 * Math.max(1, decl.tuning.concurrency)) : undefined;
    this.get_ = this.direct ? { ...base, direct: this.direct } : base;
    this.put_ = {
      ...base,
      partSize: this.partSize,
      queueSize: Math.max(1, Math.min(decl.tuning.concurrency, 8)),
      logger: opts.logger ?? silentLogger,
      ...(decl.storageClass ? { storageClass: decl.storageClass } : {}),
    };
  }

  // async so that a bad key rejects rather than throws
  async put(key: string, body: Readable, size: number, meta: ObjectMeta, signal?: AbortSignal): Promise<PutResult> {
    const objKey = this.objKey('put', key);
    const stagingKey = `${this.prefix}${STAGING_DIR}/${Date.now()}-${randomBytes(8).toString('hex')}`;
    return s3Put(this.put_, { key, objKey, stagingKey }, body, size, meta, signal);
  }

  async get(key: string, range?: ByteRange, signal?: AbortSignal, expect?: string): Promise<Buffer> {
    return s3Get(this.get_, key, this.objKey('get', key), range, signal, expect);
  }

  async getInto(key: string, range: ByteRange, dst: Buffer, signal?: AbortSignal, expect?: string, progress?: Progress): Promise<number> {
    return s3GetInto(this.get_, key, this.objKey('get', key), range, dst, signal, expect, progress);
  }

  async getStream(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    return s3GetStream(this.get_, key, this.objKey('get', key), range, signal);
  }

  async stat(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    const objKey = this.objKey('stat', key);
    try {
      const h = await callS3(this.ctx('stat', key), signal, (s) => this.hot.head(this.bucket, objKey, s));
      const meta = fromS3Metadata(h.Metadata);
      return {
        key,
        size: h.ContentLength ?? 0,
        ...(h.ETag ? { etag: h.ETag } : {}),
        ...(h.LastModified ? { lastModified: h.LastModified } : {}),
        ...(meta ? { meta } : {}),
      };
    } catch (e) {
      if (e instanceof TierError && e.code === 'NotFound' && !/NoSuchBucket/.test(e.message)) return null;
      throw e;
    }
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    const objKey = this.objKey('delete', key);
    await callS3(this.ctx('delete', key), signal, (s) =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objKey }), { abortSignal: s }),
    );
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    checkPrefix(this.name, prefix);
    const staging = `${this.prefix}${STAGING_DIR}/`;
    let token: string | undefined;
    do {
      const page = await callS3(this.ctx('list', prefix), signal, (s) =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            MaxKeys: this.pageSize,
            ContinuationToken: token,
          }),
          { abortSignal: s },
        ),
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key || o.Key.startsWith(staging)) continue;
        yield {
          key: o.Key.slice(this.prefix.length),
          size: o.Size ?? 0,
          ...(o.ETag ? { etag: o.ETag } : {}),
          ...(o.LastModified ? { lastModified: o.LastModified } : {}),
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Deletes staging objects and aborts incomplete multipart uploads under the prefix older than maxAgeMs. */
  async sweepTemp(maxAgeMs = DEFAULT_SWEEP_AGE_MS, signal?: AbortSignal): Promise<number> {
    const cutoff = Date.now() - maxAgeMs;
    const staging = `${this.prefix}${STAGING_DIR}/`;
    let n = 0;
    let token: string | undefined;
    do {
      const page = await callS3(this.ctx('sweep', staging), signal, (s) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: staging, ContinuationToken: token }), {
          abortSignal: s,
        }),
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key || (o.LastModified?.getTime() ?? 0) >= cutoff) continue;
        await callS3(this.ctx('sweep', o.Key), signal, (s) =>
          this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: o.Key }), { abortSignal: s }),
        );
        n++;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const page = await callS3(this.ctx('sweep', this.prefix), signal, (s) =>
        this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker }),
          { abortSignal: s },
        ),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || (u.Initiated?.getTime() ?? 0) >= cutoff) continue;
        await callS3(this.ctx('sweep', u.Key), signal, (s) =>
          this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }), {
            abortSignal: s,
          }),
        );
        n++;
      }
      if (!page.IsTruncated) break;
      [keyMarker, idMarker] = [page.NextKeyMarker, page.NextUploadIdMarker];
    }
    return n;
  }

  async close(): Promise<void> {
    this.client.destroy();
    for (const a of this.agents) a.destroy();
    this.direct?.close();
  }

  private objKey(op: string, key: string): string {
    checkKey(this.name, op, key);
    return this.prefix + key;
  }

  private ctx(op: string, key: string): CallContext {
    return { op, tier: this.name, key, bucket: this.bucket, timeoutMs: this.decl.tuning.timeoutMs };
  }
}
