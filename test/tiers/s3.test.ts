// The contract suite against a real Ceph RGW on 127.0.0.1, plus S3-specific checks.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { S3Tier } from '../../src/tiers/s3.js';
import { freshBucket, s3Curl, s3TestDecl, s3TestEnv } from '../helpers/rgw.js';
import { bodyOf, metaFor, tierContract } from './contract.js';

const PART = 5 * 1024 * 1024;
const env = s3TestEnv();

tierContract('s3 (Ceph RGW)', async () => new S3Tier(s3TestDecl(freshBucket(env, 'contract')), { partSize: PART, listPageSize: 2 }), {
  partSize: PART,
});

describe('s3 tier specifics', () => {
  test('object metadata is stored as x-amz-meta-* headers a plain S3 client can read', async () => {
    const bucket = freshBucket(env, 'meta');
    const tier = new S3Tier(s3TestDecl(bucket), { partSize: PART });
    try {
      for (const size of [1000, PART * 2 + 1]) {
        const data = randomBytes(size);
        await tier.put(`m/${size}`, bodyOf(data), size, metaFor(data, '/home/ana/über file.txt'));
        const headers = s3Curl(env, 'HEAD', `/${bucket}/tier/m/${size}`, ['-I']).toLowerCase();
        assert.match(headers, new RegExp(`x-amz-meta-sha256: ${createHash('sha256').update(data).digest('hex')}`));
        assert.match(headers, /x-amz-meta-path: %2fhome%2fana%2f%c3%bcber%20file\.txt/);
        assert.match(headers, /x-amz-meta-mode: 100640/);
        assert.match(headers, new RegExp(`content-length: ${size}\\r`));
      }
      // no staging object or incomplete multipart upload is left behind
      const listing = s3Curl(env, 'GET', `/${bucket}?list-type=2`);
      assert.doesNotMatch(listing, /tier-staging/);
      assert.doesNotMatch(s3Curl(env, 'GET', `/${bucket}?uploads=`), /<Upload>/);
    } finally {
      await tier.close();
    }
  });

  test('an aborted multipart upload leaves no incomplete upload on the server', async () => {
    const bucket = freshBucket(env, 'mpu');
    const tier = new S3Tier(s3TestDecl(bucket), { partSize: PART });
    try {
      const ac = new AbortController();
      const data = randomBytes(PART * 3);
      const body = bodyOf(data, 256 * 1024);
      let sent = 0;
      body.on('data', (c: Buffer) => {
        sent += c.length;
        if (sent > PART * 1.5) ac.abort();
      });
      await assert.rejects(tier.put('big', body, PART * 4, metaFor(data), ac.signal), { code: 'Aborted' });
      // lib-storage aborts the multipart upload in the background once in-flight parts settle
      for (let i = 0; i < 100 && /<Upload>/.test(s3Curl(env, 'GET', `/${bucket}?uploads=`)); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.doesNotMatch(s3Curl(env, 'GET', `/${bucket}?uploads=`), /<Upload>/);
      assert.equal(await tier.stat('big'), null);
    } finally {
      await tier.close();
    }
  });

  test('checksum option absent: the SDK default chain decides, and RGW still round-trips', async () => {
    const decl = s3TestDecl(freshBucket(env, 'cksum'), {}, env);
    delete decl.checksum;
    const tier = new S3Tier(decl, { partSize: PART });
    try {
      for (const size of [100, PART * 2 + 7]) {
        const data = randomBytes(size);
        const res = await tier.put(`k${size}`, bodyOf(data), size, metaFor(data));
        assert.equal(res.sha256, createHash('sha256').update(data).digest('hex'));
        assert.ok((await tier.get(`k${size}`)).equals(data));
      }
    } finally {
      await tier.close();
    }
  });

  test('prefix: objects live under it; list strips it', async () => {
    const bucket = freshBucket(env, 'prefix');
    const tier = new S3Tier(s3TestDecl(bucket, { prefix: 'hsm/v1' }), { partSize: PART });
    try {
      const data = Buffer.from('abc');
      await tier.put('x/y', bodyOf(data), 3, metaFor(data));
      assert.match(s3Curl(env, 'GET', `/${bucket}?list-type=2`), /<Key>hsm\/v1\/x\/y<\/Key>/);
      const keys: string[] = [];
      for await (const o of tier.list('')) keys.push(o.key);
      assert.deepEqual(keys, ['x/y']);
    } finally {
      await tier.close();
    }
  });

  test('a missing bucket is NotFound from put, not an empty success', async () => {
    const tier = new S3Tier(s3TestDecl(`no-such-bucket-${Date.now()}`), { partSize: PART });
    try {
      await assert.rejects(tier.put('k', bodyOf(Buffer.from('x')), 1, metaFor(Buffer.from('x'))), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'NotFound');
        assert.match(e.message, /NoSuchBucket/);
        return true;
      });
    } finally {
      await tier.close();
    }
  });

  test('wrong credentials are AccessDenied and the secret never appears in the error', async () => {
    const decl = s3TestDecl(freshBucket(env, 'creds'), {}, env);
    const saved = process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = 'wrong-secret-0123456789'; // read by the default chain at first use
    const tier = new S3Tier(decl, { partSize: PART });
    try {
      await assert.rejects(tier.stat('k'), (e: Error & { code?: string; permanent?: boolean }) => {
        assert.equal(e.code, 'AccessDenied', e.message);
        assert.equal(e.permanent, true);
        assert.doesNotMatch(e.message, /wrong-secret/);
        return true;
      });
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = saved;
      await tier.close();
    }
  });
});
