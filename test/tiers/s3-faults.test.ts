// S3 faults against the real RGW behind a FAULT-INJECTION proxy (fault-proxy.ts): the server
// going down or stalling mid-upload and mid-download must give a typed, retryable TierError
// within the tier's timeout, and leave nothing visible. The shared RGW itself is never harmed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_TUNING } from '../../src/dsl/ast.js';
import { S3Tier } from '../../src/tiers/s3.js';
import { isTierError, type TierErrorCode } from '../../src/tiers/tier.js';
import { freshBucket, s3Curl, s3TestDecl, s3TestEnv } from '../helpers/rgw.js';
import { bodyOf, metaFor } from './contract.js';
import { FaultProxy } from './fault-proxy.js';

const MiB = 1024 * 1024;
const PART = 5 * MiB;
const TIMEOUT = 2000;
// Loose bound: the error must come in about one timeout, never "eventually".
const MARGIN = 5000;
const env = s3TestEnv();
const bucket = freshBucket(env, 'faults');
const direct = new S3Tier(s3TestDecl(bucket, {}, env), { partSize: PART });
const upstream = new URL(env.endpoint);

async function viaProxy(): Promise<{ proxy: FaultProxy; tier: S3Tier }> {
  const proxy = await FaultProxy.start(upstream.hostname, Number(upstream.port));
  const decl = s3TestDecl(bucket, { endpoint: proxy.endpoint, tuning: { ...DEFAULT_TUNING, timeoutMs: TIMEOUT } }, env);
  return { proxy, tier: new S3Tier(decl, { partSize: PART }) };
}

/** A read started with `start(signal)` and aborted 100 ms later rejects with Aborted, without waiting for the timeout. */
async function abortsAtOnce(start: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
  const ac = new AbortController();
  const p = start(ac.signal);
  setTimeout(() => ac.abort(), 100);
  const t0 = Date.now();
  await assert.rejects(p, (e: unknown) => isTierError(e) && e.code === 'Aborted');
  assert.ok(Date.now() - t0 < TIMEOUT, 'abort did not wait for the timeout');
}

async function failsWith(p: Promise<unknown>, codes: TierErrorCode[], key: string): Promise<number> {
  const t0 = Date.now();
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isTierError(e), `expected a TierError, got ${String(e)}`);
    assert.ok(codes.includes(e.code), `code ${e.code} not in ${codes.join('|')}: ${e.message}`);
    assert.equal(e.permanent, false, 'a dead or stalled server is worth a retry');
    assert.equal(e.key, key);
    assert.equal(e.tier, 'rgw');
    return true;
  });
  const took = Date.now() - t0;
  assert.ok(took < TIMEOUT + MARGIN, `error after ${took} ms; timeout is ${TIMEOUT} ms`);
  return took;
}

async function drain(s: Readable): Promise<number> {
  let n = 0;
  for await (const c of s) n += (c as Buffer).length;
  return n;
}

describe('s3 tier under faults (fault-injection proxy in front of real RGW)', () => {
  const big = randomBytes(16 * MiB);
  before(async () => {
    await direct.put('dl/16m', bodyOf(big), big.length, metaFor(big));
  });
  after(async () => {
    await direct.close();
  });

  test('server down before the request: Unavailable, retryable', async () => {
    const { proxy, tier } = await viaProxy();
    proxy.down();
    await failsWith(tier.stat('dl/16m'), ['Unavailable'], 'dl/16m');
    await tier.close();
  });

  test('server stopped mid-upload (multipart): Unavailable; nothing visible; sweep cleans the upload', async () => {
    const { proxy, tier } = await viaProxy();
    const data = randomBytes(24 * MiB);
    proxy.after('up', 8 * MiB, 'down');
    await failsWith(tier.put('up/multi', bodyOf(data), data.length, metaFor(data)), ['Unavailable', 'Timeout'], 'up/multi');
    await tier.close();
    assert.equal(await direct.stat('up/multi'), null);
    // The dead server could not be told to abort the multipart upload: sweepTemp does it later.
    const pending = s3Curl(env, 'GET', `/${bucket}?uploads=`);
    if (/<Upload>/.test(pending)) assert.ok((await direct.sweepTemp(0)) >= 1);
    assert.doesNotMatch(s3Curl(env, 'GET', `/${bucket}?uploads=`), /<Upload>/);
  });

  test('server stopped mid-upload (single PUT): Unavailable; the previous object stays whole', async () => {
    const old = randomBytes(1000);
    await direct.put('up/single', bodyOf(old), old.length, metaFor(old));
    const { proxy, tier } = await viaProxy();
    const data = randomBytes(4 * MiB);
    proxy.after('up', 1 * MiB, 'down');
    await failsWith(tier.put('up/single', bodyOf(data), data.length, metaFor(data)), ['Unavailable', 'Timeout'], 'up/single');
    await tier.close();
    assert.ok((await direct.get('up/single')).equals(old));
  });

  test('server stopped mid-download: the stream fails with Unavailable, never short data', async () => {
    const { proxy, tier } = await viaProxy();
    const s = await tier.getStream('dl/16m');
    proxy.after('down', 4 * MiB, 'down');
    await failsWith(drain(s), ['Unavailable'], 'dl/16m');
    await tier.close();
  });

  test('server stopped mid-download: get() rejects (ranged read)', async () => {
    const { proxy, tier } = await viaProxy();
    proxy.after('down', 1 * MiB, 'down');
    await failsWith(tier.get('dl/16m', { offset: 1000, length: 8 * MiB }), ['Unavailable'], 'dl/16m');
    await tier.close();
  });

  test('server stopped mid-download: getInto (straight into the buffer, s3-direct.ts) rejects with Unavailable', async () => {
    const { proxy, tier } = await viaProxy();
    proxy.after('down', 1 * MiB, 'down');
    await failsWith(tier.getInto('dl/16m', { offset: 1000, length: 8 * MiB }, Buffer.alloc(8 * MiB)), ['Unavailable'], 'dl/16m');
    await tier.close();
  });

  test('server stalls mid-download: getInto fails with Timeout; a caller abort answers at once', async () => {
    const { proxy, tier } = await viaProxy();
    proxy.after('down', 2 * MiB, 'stall');
    const took = await failsWith(tier.getInto('dl/16m', { offset: 0, length: 8 * MiB }, Buffer.alloc(8 * MiB)), ['Timeout'], 'dl/16m');
    assert.ok(took >= TIMEOUT * 0.5, `Timeout after only ${took} ms`);
    await abortsAtOnce((signal) => tier.getInto('dl/16m', { offset: 0, length: 4096 }, Buffer.alloc(4096), signal));
    await tier.close();
    await proxy.close();
  });

  test('stalled server (accepts, never answers): stat gives Timeout', async () => {
    const { proxy, tier } = await viaProxy();
    proxy.stall();
    const took = await failsWith(tier.stat('dl/16m'), ['Timeout'], 'dl/16m');
    assert.ok(took >= TIMEOUT * 0.5, `Timeout after only ${took} ms`);
    await tier.close();
    await proxy.close();
  });

  test('server stalls mid-download: the stream fails with Timeout', async () => {
    const { proxy, tier } = await viaProxy();
    const s = await tier.getStream('dl/16m');
    proxy.after('down', 2 * MiB, 'stall');
    await failsWith(drain(s), ['Timeout'], 'dl/16m');
    await tier.close();
    await proxy.close();
  });

  test('server stalls mid-upload (multipart): Timeout, nothing visible', async () => {
    const { proxy, tier } = await viaProxy();
    const data = randomBytes(24 * MiB);
    proxy.after('up', 7 * MiB, 'stall');
    await failsWith(tier.put('up/stall', bodyOf(data), data.length, metaFor(data)), ['Timeout'], 'up/stall');
    await tier.close();
    await proxy.close();
    assert.equal(await direct.stat('up/stall'), null);
  });

  test('a caller abort answers a stalled read at once with Aborted', async () => {
    const { proxy, tier } = await viaProxy();
    proxy.stall();
    await abortsAtOnce((signal) => tier.get('dl/16m', { offset: 0, length: 4096 }, signal));
    await tier.close();
    await proxy.close();
  });
});
