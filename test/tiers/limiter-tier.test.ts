// ThrottledTier (src/tiers/throttled.ts) over a real LocalTier: the contract still holds,
// bytes and requests are paced (lower bounds only), recalls pass batch traffic.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { DEFAULT_TUNING } from '../../src/dsl/ast.js';
import { Limiter } from '../../src/tiers/limiter.js';
import { LocalTier } from '../../src/tiers/local.js';
import { throttledViews } from '../../src/tiers/throttled.js';
import { isTierError, type Tier } from '../../src/tiers/tier.js';
import { streamGetBytes } from '../../src/recall/fill.js';
import { RUN_BYTES } from '../../src/recall/fast-path.js';
import { bodyOf, metaFor, tierContract } from './contract.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const root = mkdtempSync(join(tmpdir(), 'tier-throttle-'));
after(() => rmSync(root, { recursive: true, force: true }));

function views(dir: string, limits: { bytesPerSec?: number; requestsPerSec?: number; concurrency?: number }) {
  return throttledViews(new LocalTier('disk', join(root, dir), DEFAULT_TUNING), new Limiter(limits));
}

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

// Limits high enough not to slow the suite, low enough that every call goes through the
// buckets; concurrency 2 caps batch calls at one in flight.
tierContract('throttled local (batch view)', async () => views('contract', { bytesPerSec: 4096 * MiB, requestsPerSec: 100_000, concurrency: 2 }).batch, {
  partSize: 5 * MiB,
});

describe('throttled tier', () => {
  test('put of 8 MiB at 4 MiB/s takes at least 1 s (4 MiB burst), a getStream of it 2 s more; bytes exact', async () => {
    const v = views('bw', { bytesPerSec: 4 * MiB, concurrency: 8 });
    const data = randomBytes(8 * MiB);
    const t0 = performance.now();
    const res = await v.batch.put('a/b', bodyOf(data), data.length, metaFor(data));
    const putS = (performance.now() - t0) / 1000;
    assert.ok(putS >= 0.95, `put took ${putS.toFixed(2)} s`);
    assert.equal(res.sha256, sha(data));
    assert.equal(res.size, data.length);
    const t1 = performance.now();
    const back = await collect(await v.batch.getStream('a/b'));
    const getS = (performance.now() - t1) / 1000;
    assert.ok(getS >= 1.9, `getStream took ${getS.toFixed(2)} s`);
    assert.equal(sha(back), sha(data));
    assert.ok(v.limiter.waitedMs('batch') >= 2500, `batch waited ${v.limiter.waitedMs('batch')} ms`);
    await v.batch.close();
  });

  test('a recall (interactive get) started during a batch put finishes before it', async () => {
    const v = views('prio', { bytesPerSec: 4 * MiB, concurrency: 8 });
    const small = randomBytes(MiB);
    await v.batch.put('small', bodyOf(small), small.length, metaFor(small));
    const big = randomBytes(16 * MiB);
    let putDone = 0;
    const put = v.batch.put('big', bodyOf(big), big.length, metaFor(big)).then((r) => ((putDone = performance.now()), r));
    await new Promise((r) => setTimeout(r, 300));
    const got = await v.interactive.get('small', { offset: 0, length: small.length });
    const gotAt = performance.now();
    assert.equal(sha(got), sha(small));
    assert.equal(putDone, 0, 'the put finished before the recall');
    assert.equal((await put).sha256, sha(big));
    assert.ok(putDone > gotAt);
    assert.ok(v.limiter.waitedMs('batch') > 0);
    await v.interactive.close();
  });

  test('at a small rate, pieces are at most one second of it: 24 KiB at 8 KiB/s takes at least 2 s, not one debt', async () => {
    const v = views('slow', { bytesPerSec: 8 * 1024 });
    const data = randomBytes(24 * 1024);
    const t0 = performance.now();
    const res = await v.batch.put('s', bodyOf(data), data.length, metaFor(data));
    assert.ok(performance.now() - t0 >= 1950, `took ${performance.now() - t0} ms`);
    assert.equal(res.sha256, sha(data));
  });

  test('a multipart put is charged a request per part as it goes, never its parts at once (no debt recalls wait out)', async () => {
    // The local tier has no parts; give it the S3 tier's `partSize` property so the
    // throttle charges it as multipart. Charges are observed, not altered.
    const inner = Object.assign(new LocalTier('disk', join(root, 'parts'), DEFAULT_TUNING), { partSize: 1 * MiB });
    const limiter = new Limiter({ requestsPerSec: 1000 });
    const charged: number[] = [];
    const acquire = limiter.acquire.bind(limiter);
    limiter.acquire = (cls, cost, signal) => {
      if (cost.requests) charged.push(cost.requests);
      return acquire(cls, cost, signal);
    };
    const v = throttledViews(inner, limiter);
    const data = randomBytes(3 * MiB + 5); // 4 parts: create + 4 + complete
    assert.equal((await v.batch.put('mp', bodyOf(data), data.length, metaFor(data))).sha256, sha(data));
    assert.equal(charged.reduce((a, b) => a + b, 0), 6, `charges ${charged}`);
    assert.ok(Math.max(...charged) <= 1, `one charge asked for ${Math.max(...charged)} requests at once`);
    await v.batch.close();
  });

  test('tpslimit: 20 stats at 10 requests/s take at least 1 s', async () => {
    const v = views('tps', { requestsPerSec: 10 });
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) assert.equal(await v.batch.stat(`none/${i}`), null);
    assert.ok(performance.now() - t0 >= 950);
  });

  test('listing with the batch cap at one call does not block calls made per item (gc pattern)', async () => {
    const v = views('list', { requestsPerSec: 100_000, concurrency: 1 });
    const d = Buffer.from('x');
    for (let i = 0; i < 5; i++) await v.batch.put(`k/${i}`, bodyOf(d), 1, metaFor(d));
    const seen: string[] = [];
    for await (const o of v.batch.list('k/')) {
      assert.equal((await v.batch.stat(o.key))?.size, 1);
      seen.push(o.key);
    }
    assert.deepEqual(seen.sort(), ['k/0', 'k/1', 'k/2', 'k/3', 'k/4']);
  });

  test('an abort while waiting for the rate limit is TierError Aborted and leaves nothing under the key', async () => {
    const v = views('abort', { bytesPerSec: MiB });
    const data = randomBytes(4 * MiB);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    await assert.rejects(v.batch.put('x', bodyOf(data), data.length, metaFor(data), ac.signal), (e: unknown) => isTierError(e) && e.code === 'Aborted');
    assert.equal(await v.interactive.stat('x'), null);
  });

  test('closing both views closes the inner tier once and fails waits', async () => {
    let closes = 0;
    // A counting subclass: only close() is observed.
    class CountingLocalTier extends LocalTier {
      override async close(): Promise<void> {
        closes++;
      }
    }
    const limiter = new Limiter({ bytesPerSec: 1000 });
    const v = throttledViews(new CountingLocalTier('disk', join(root, 'close')), limiter);
    const d = randomBytes(10_000);
    const put = v.batch.put('y', bodyOf(d, 100), d.length, metaFor(d)); // 10 s at 1000 B/s
    await new Promise((r) => setTimeout(r, 100));
    await Promise.all([v.interactive.close(), v.batch.close()]);
    await assert.rejects(put, (e: unknown) => isTierError(e) && e.code === 'Aborted');
    assert.equal(closes, 1);
    assert.equal(v.batch.name, 'disk');
    assert.equal(v.interactive.kind, 'local');
  });

  test('an S3 stream behind a byte rate reads in runs of 2 MiB, not 16 MiB GETs charged whole up front', () => {
    // A named fake inner tier: only its kind is read.
    const s3ForTest = { name: 's3', kind: 's3' } as unknown as Tier;
    assert.ok(streamGetBytes(s3ForTest) > RUN_BYTES, 'an unlimited S3 tier streams in long GETs');
    assert.ok(streamGetBytes(throttledViews(s3ForTest, new Limiter({ requestsPerSec: 10 })).interactive) > RUN_BYTES, 'a request limit alone keeps long GETs');
    assert.equal(streamGetBytes(throttledViews(s3ForTest, new Limiter({ bytesPerSec: 512 * 1024 })).interactive), RUN_BYTES);
  });
});
