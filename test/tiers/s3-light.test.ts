// The S3 tier's light request path (src/tiers/s3-light.ts) against the real RGW: it is what
// sends the hot requests, the server refuses a body that differs from its Content-MD5 or its
// signed SHA-256 (what lets a single PUT stand without a HEAD), keys needing encoding round
// trip, and bad credentials are AccessDenied naming tier and key.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { S3Tier } from '../../src/tiers/s3.js';
import { mapS3Error } from '../../src/tiers/s3-errors.js';
import { S3Light } from '../../src/tiers/s3-light.js';
import { freshBucket, s3TestDecl, s3TestEnv } from '../helpers/rgw.js';
import { bodyOf, metaFor } from './contract.js';

const env = s3TestEnv();
const md5 = (b: Buffer) => createHash('md5').update(b).digest('base64');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function internals(t: S3Tier): { client: S3Client; light: S3Light } {
  const x = t as unknown as { client: S3Client; hot: { light: S3Light } };
  return { client: x.client, light: x.hot.light };
}

describe('s3 light request path (real RGW)', () => {
  test('single PUT, HEAD and ranged GET go by the light path, not the SDK', async () => {
    const tier = new S3Tier(s3TestDecl(freshBucket(env, 'light')));
    const { client } = internals(tier);
    let sdk = 0;
    const send = client.send.bind(client);
    client.send = ((...a: Parameters<S3Client['send']>) => (sdk++, send(...a))) as S3Client['send'];
    try {
      const data = randomBytes(70_000);
      const res = await tier.put('a/b', bodyOf(data), data.length, metaFor(data));
      assert.equal(res.contentChecked, true);
      assert.equal((await tier.stat('a/b'))?.meta?.sha256, sha(data));
      assert.ok((await tier.get('a/b', { offset: 1000, length: 5000 })).equals(data.subarray(1000, 6000)));
      assert.equal(await tier.stat('a/none'), null);
      assert.equal(sdk, 1, 'only the probe that reads the SDK resolved endpoint and signing scope');
    } finally {
      await tier.close();
    }
  });

  test('getInto reads straight into the buffer on sockets of its own (s3-direct.ts): right bytes for any range, sockets reused, no SDK', async () => {
    const tier = new S3Tier(s3TestDecl(freshBucket(env, 'direct')));
    const { client } = internals(tier);
    const agent = (tier as unknown as { agents: [{ totalSocketCount: number }] }).agents[0];
    const pool = (tier as unknown as { direct: { free: unknown[] } }).direct;
    let sdk = 0;
    const send = client.send.bind(client);
    client.send = ((...a: Parameters<S3Client['send']>) => (sdk++, send(...a))) as S3Client['send'];
    try {
      const data = randomBytes(3_000_000);
      await tier.put('d', bodyOf(data), data.length, metaFor(data));
      const puts = agent.totalSocketCount;
      // Ranges whose body comes with the head, spans the head buffer, ends past the object.
      for (const [o, l] of [[0, 100], [10, 17_000], [123, 2_999_877], [2_999_000, 5000], [0, 3_000_000]] as const) {
        const dst = Buffer.alloc(l);
        const n = await tier.getInto('d', { offset: o, length: l }, dst);
        assert.equal(n, Math.min(l, data.length - o));
        assert.ok(dst.subarray(0, n).equals(data.subarray(o, o + n)), `range ${o}+${l}`);
      }
      const many = await Promise.all([0, 1, 2, 3, 4, 5].map(async (k) => {
        const dst = Buffer.alloc(500_000);
        await tier.getInto('d', { offset: k * 500_000, length: 500_000 }, dst);
        return dst.equals(data.subarray(k * 500_000, (k + 1) * 500_000));
      }));
      assert.deepEqual(many, [true, true, true, true, true, true]);
      assert.equal(await tier.getInto('d', { offset: 3_000_000, length: 10 }, Buffer.alloc(10)), 0, 'a range past the end: no bytes');
      await assert.rejects(tier.getInto('none', { offset: 0, length: 10 }, Buffer.alloc(10)), (e: unknown) => (e as { code?: string }).code === 'NotFound');
      await assert.rejects(tier.getInto('d', { offset: 0, length: 5000 }, Buffer.alloc(4000)), /answered more bytes/);
      assert.ok(pool.free.length >= 1 && pool.free.length <= 8, `sockets kept for reuse: ${pool.free.length}`);
      assert.equal(agent.totalSocketCount, puts, 'no GET went by node:http');
      assert.equal(sdk, 1, 'only the probe');
    } finally {
      await tier.close();
    }
  });

  test('the server refuses a body that differs from its Content-MD5 or its signed SHA-256', async () => {
    const bucket = freshBucket(env, 'light-bad');
    const tier = new S3Tier(s3TestDecl(bucket));
    const { light } = internals(tier);
    const good = randomBytes(4096);
    const bad = Buffer.from(good);
    bad[100]! ^= 1;
    const c = { op: 'put', tier: 'rgw', key: 'x', bucket, timeoutMs: 10_000 };
    try {
      const put = (body: Buffer, contentMd5: string, payload: string) =>
        light.send({ method: 'PUT', objKey: 'tier/x', headers: { 'content-md5': contentMd5 }, body, payloadSha256: payload }, AbortSignal.timeout(10_000));
      // RGW 16 checks both (measured): a corrupt body never becomes the object.
      const e1 = await put(bad, md5(good), sha(bad)).then(() => null, (e: unknown) => e);
      assert.equal(mapS3Error(e1, c).code, 'Corrupt', String(e1));
      const e2 = await put(bad, md5(bad), sha(good)).then(() => null, (e: unknown) => e);
      assert.equal(mapS3Error(e2, c).code, 'Corrupt', String(e2));
      assert.equal(await tier.stat('x'), null);
      (await put(good, md5(good), sha(good))).resume();
      assert.ok((await tier.get('x')).equals(good));
    } finally {
      await tier.close();
    }
  });

  test('keys with characters that need encoding round trip and list back as written', async () => {
    const tier = new S3Tier(s3TestDecl(freshBucket(env, 'light-keys')));
    const keys = ["d/a b+c", "d/über/ü%41", "d/!'()*~&=$,;@:", 'd/q?x#y'];
    try {
      for (const k of keys) {
        const data = randomBytes(300);
        await tier.put(k, bodyOf(data), data.length, metaFor(data));
        assert.equal((await tier.stat(k))?.size, 300, k);
        assert.ok((await tier.get(k)).equals(data), k);
      }
      const listed: string[] = [];
      for await (const o of tier.list('d/')) listed.push(o.key);
      assert.deepEqual(listed.sort(), [...keys].sort());
    } finally {
      await tier.close();
    }
  });

  test('wrong credentials: AccessDenied naming tier and key', async () => {
    const saved = process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret';
    const tier = new S3Tier(s3TestDecl(freshBucket(env, 'light-cred')));
    try {
      await assert.rejects(tier.stat('k/1'), (e: Error & { code?: string }) => e.code === 'AccessDenied' && /tier rgw: stat "k\/1"/.test(e.message));
      const data = randomBytes(10);
      await assert.rejects(tier.put('k/2', bodyOf(data), 10, metaFor(data)), (e: Error & { code?: string }) => e.code === 'AccessDenied' && /"k\/2"/.test(e.message));
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = saved;
      await tier.close();
    }
  });
});
