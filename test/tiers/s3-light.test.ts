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
