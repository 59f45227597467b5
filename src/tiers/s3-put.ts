// S3 put: one PutObject (body buffered, Content-MD5) up to the part size; lib-storage
// multipart above it (memory bounded by queueSize x partSize). The SHA-256 is computed while
// streaming. Multipart metadata is fixed when the upload starts, so unless the caller passed
// the SHA-256 in advance, the upload goes to a staging key and is copied onto the final key
// with the full metadata (one atomic server-side CopyObject), then the staging key is deleted.
import type { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Logger } from '../log.js';
import { BodyHash, expectedSha, HashCheck } from './hash-stream.js';
import { callS3, type CallContext } from './s3-client.js';
import { mapS3Error } from './s3-errors.js';
import type { S3Hot } from './s3-hot.js';
import { toS3Metadata } from './s3-meta.js';
import { TierError, type ObjectMeta, type PutResult } from './tier.js';

const MAX_COPY = 5 * 1024 ** 3; // CopyObject limit
const MAX_PARTS = 10_000;
const COPY_RATE = 20 * 1024 * 1024; // bytes/s assumed for server-side copy deadlines

export interface PutContext {
  client: S3Client;
  hot: S3Hot;
  bucket: string;
  tier: string;
  storageClass?: string;
  partSize: number;
  queueSize: number;
  timeoutMs: number;
  logger: Logger;
}

export interface PutTarget {
  key: string; // tier key (for errors)
  objKey: string; // full S3 key
  stagingKey: string; // full S3 key for the staging copy
}

export async function s3Put(p: PutContext, t: PutTarget, body: Readable, size: number, meta: ObjectMeta, signal?: AbortSignal): Promise<PutResult> {
  const c: CallContext = { op: 'put', tier: p.tier, key: t.key, bucket: p.bucket, timeoutMs: p.timeoutMs };
  if (size <= p.partSize) return putSingle(p, c, t, body, size, meta, signal);
  return putMultipart(p, c, t, body, size, meta, signal);
}

async function putSingle(p: PutContext, c: CallContext, t: PutTarget, body: Readable, size: number, meta: ObjectMeta, signal?: AbortSignal): Promise<PutResult> {
  const expect = expectedSha(meta.sha256);
  // The light path signs the payload with the caller's SHA-256 and the server refuses other
  // bytes (XAmzContentSHA256Mismatch: Corrupt; test/tiers/s3-light.test.ts): no second hash
  // of it here. Otherwise we hash what we send. MD5 always: Content-MD5 and the ETag check.
  const signed = expect !== undefined && (await p.hot.signsPayload());
  const h = new BodyHash({ tier: p.tier, key: t.key, size, sha256: expect }, { md5: true, hashSha: !signed });
  const chunks: Buffer[] = [];
  // A plain read loop, not a stream pipeline: for a 64 KiB body the pipeline cost more CPU than its hashes (bench 7).
  const onAbort = () => body.destroy(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    for await (const chunk of body as AsyncIterable<Buffer>) {
      try {
        h.update(chunk);
      } catch (e) {
        body.destroy();
        throw e;
      }
      chunks.push(chunk);
    }
  } catch (e) {
    throw mapS3Error(e, { ...c, caller: signal });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  h.finish();
  const sha256 = h.sha256;
  const md5 = h.md5Base64()!;
  const Body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
  const res = await callS3(c, signal, (s) =>
    p.hot.put(
      {
        Bucket: p.bucket,
        Key: t.objKey,
        Body,
        ContentMD5: md5, // the server rejects a body that does not match (BadDigest)
        Sha256: sha256, // and, on the light path, one whose signed SHA-256 differs
        Metadata: toS3Metadata(meta, sha256),
        ...(p.storageClass ? { StorageClass: p.storageClass } : {}),
      },
      s,
    ),
  );
  // A single PUT's ETag is the MD5 of the stored bytes. (No HEAD: a concurrent writer of the
  // same key could answer it.)
  const md5hex = Buffer.from(md5, 'base64').toString('hex');
  const etag = res.ETag;
  if (etag && etag.replace(/"/g, '') !== md5hex) {
    throw new TierError('Corrupt', 'put', p.tier, t.key, `ETag ${etag} is not the MD5 ${md5hex} of what was sent`);
  }
  return { sha256, size, ...(etag ? { etag, contentChecked: true } : {}) };
}

async function putMultipart(p: PutContext, c: CallContext, t: PutTarget, body: Readable, size: number, meta: ObjectMeta, signal?: AbortSignal): Promise<PutResult> {
  const expect = expectedSha(meta.sha256);
  // Direct to the final key when the metadata is complete up front (or too big to copy).
  const direct = expect !== undefined || size > MAX_COPY;
  const target = direct ? t.objKey : t.stagingKey;
  const check = new HashCheck({ tier: p.tier, key: t.key, size, sha256: expect });
  body.once('error', (e) => check.destroy(e));
  check.once('close', () => body.readableEnded || body.destroy()); // as pipeline() would
  body.pipe(check);

  const ac = new AbortController();
  let allPartsSent = false;
  let stopped: TierError | undefined;
  // Until every part is uploaded, CompleteMultipartUpload cannot have been sent, so aborting
  // is safe and prompt. After that, Complete runs to its end (bounded by the request timeout):
  // an abort must never race a completing upload into "rejected but visible".
  const stop = (err: TierError) => {
    if (stopped || allPartsSent) return;
    stopped = err;
    check.destroy(err);
    ac.abort();
  };
  const onAbort = () => stop(new TierError('Aborted', 'put', p.tier, t.key, 'aborted by caller'));
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  // Watchdog: no body progress and no part progress for timeoutMs -> Timeout.
  let lastBytes = -1;
  let lastMove = Date.now();
  const watchdog = setInterval(() => {
    if (check.bytes !== lastBytes) [lastBytes, lastMove] = [check.bytes, Date.now()];
    else if (Date.now() - lastMove >= p.timeoutMs) {
      stop(new TierError('Timeout', 'put', p.tier, t.key, `no upload progress for ${p.timeoutMs} ms`));
    }
  }, Math.max(50, Math.min(1000, p.timeoutMs / 4)));

  const partSize = Math.max(p.partSize, Math.ceil(size / MAX_PARTS / 1048576) * 1048576);
  const upload = new Upload({
    client: p.client,
    params: {
      Bucket: p.bucket,
      Key: target,
      Body: check,
      ContentLength: size,
      Metadata: toS3Metadata(meta, direct ? expect : undefined),
      StorageClass: p.storageClass as StorageClass | undefined,
    },
    partSize,
    queueSize: p.queueSize,
    leavePartsOnError: false,
    abortController: ac,
  });
  upload.on('httpUploadProgress', (ev) => {
    lastMove = Date.now();
    if ((ev.loaded ?? 0) >= size) allPartsSent = true;
  });
  let uploaded = false; // only then can a staging object exist
  try {
    try {
      await upload.done();
      uploaded = true;
    } catch (e) {
      throw stopped ?? mapS3Error(e, { ...c, caller: signal });
    } finally {
      clearInterval(watchdog);
      signal?.removeEventListener('abort', onAbort);
    }
    // HEAD: multipart ETags come back empty from some servers (RGW); size is what we check.
    const uploadedEtag = await verifySize(p, c, target, size, signal);
    if (direct) return { sha256: check.sha256, size, ...(uploadedEtag ? { etag: uploadedEtag } : {}) };
    const copyMs = p.timeoutMs + Math.ceil((size / COPY_RATE) * 1000);
    const copied = await callS3(
      c,
      signal,
      (s) =>
        p.client.send(
          new CopyObjectCommand({
            Bucket: p.bucket,
            Key: t.objKey,
            CopySource: `${p.bucket}/${target.split('/').map(encodeURIComponent).join('/')}`,
            MetadataDirective: 'REPLACE',
            Metadata: toS3Metadata(meta, check.sha256),
            StorageClass: p.storageClass as StorageClass | undefined,
          }),
          { abortSignal: s, requestTimeout: copyMs },
        ),
      copyMs,
    );
    // Server-side copy of the verified staging object: its ETag stands for the result.
    const etag = copied.CopyObjectResult?.ETag;
    return { sha256: check.sha256, size, ...(etag ? { etag } : {}) };
  } finally {
    if (!direct && uploaded) await dropStaging(p, c, target);
  }
}

/** HEAD after upload: the stored size must be the declared size. Returns the ETag. */
async function verifySize(p: PutContext, c: CallContext, objKey: string, size: number, signal?: AbortSignal): Promise<string | undefined> {
  const head = await callS3({ ...c, op: 'put (verify)' }, signal, (s) =>
    p.hot.head(p.bucket, objKey, s),
  );
  if (head.ContentLength !== size) {
    throw new TierError('ShortObject', 'put', p.tier, c.key, `stored ${head.ContentLength} bytes, expected ${size}`);
  }
  return head.ETag;
}

async function dropStaging(p: PutContext, c: CallContext, stagingKey: string): Promise<void> {
  try {
    await callS3({ ...c, op: 'put (drop staging)' }, undefined, (s) =>
      p.client.send(new DeleteObjectCommand({ Bucket: p.bucket, Key: stagingKey }), { abortSignal: s }),
    );
  } catch (e) {
    p.logger.warn('staging object left behind; sweepTemp removes it later', { tier: p.tier, key: stagingKey, err: e });
  }
}
