// Pure pieces of the tiers, table-tested: key rules, S3 metadata codec, SDK error mapping.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkKey, checkPrefix } from '../../src/tiers/keys.js';
import { mapS3Error } from '../../src/tiers/s3-errors.js';
import { fromS3Metadata, toS3Metadata } from '../../src/tiers/s3-meta.js';
import { TierError, type TierErrorCode } from '../../src/tiers/tier.js';

describe('keys', () => {
  test('accepts relative slash paths', () => {
    for (const k of ['a', 'a/b/c', 'ab/cd/0123abcd', 'x.meta', 'dir.tmp/x', 'über/file name']) checkKey('t', 'put', k);
    checkPrefix('t', '');
    checkPrefix('t', 'a/');
  });
  test('rejects escapes, empties, reserved names (InvalidKey, permanent)', () => {
    for (const k of ['', '/a', 'a/../b', '..', 'a//b', 'a/', './a', 'a/.tmp-x', '.tier-staging/x', 'k.meta.json', 'a\nb', 'x'.repeat(901)]) {
      assert.throws(
        () => checkKey('t', 'put', k),
        (e: unknown) => e instanceof TierError && e.code === 'InvalidKey' && e.permanent && e.key === k,
        JSON.stringify(k),
      );
    }
    assert.throws(() => checkPrefix('t', '../'), TierError);
  });
});

describe('s3 metadata codec', () => {
  test('round trip, path percent-encoded, mode octal', () => {
    const meta = { sha256: 'ab'.repeat(32), size: 12, path: '/srv/ä b/%x', mode: 0o100755, uid: 7, gid: 8, mtimeMs: 1700000000123.5 };
    const md = toS3Metadata(meta, meta.sha256);
    assert.equal(md.mode, '100755');
    assert.equal(md.path, '%2Fsrv%2F%C3%A4%20b%2F%25x');
    assert.ok(Object.values(md).every((v) => /^[\x20-\x7e]*$/.test(v)), 'header values are ASCII');
    assert.deepEqual(fromS3Metadata(md), meta);
  });
  test('absent or foreign metadata decodes to what is there', () => {
    assert.equal(fromS3Metadata(undefined), undefined);
    assert.equal(fromS3Metadata({}), undefined);
    assert.deepEqual(fromS3Metadata({ size: '5', other: 'x' }), { size: 5 });
    const noSha = toS3Metadata({ sha256: '', size: 1, path: '/a', mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 }, undefined);
    assert.equal('sha256' in noSha, false);
  });
});

describe('s3 error mapping', () => {
  const c = { op: 'get', tier: 'cold', key: 'k', bucket: 'b', timeoutMs: 1000 };
  const sdk = (name: string, status?: number, extra: object = {}) =>
    Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status } }, extra);
  const cases: [string, unknown, TierErrorCode, boolean][] = [
    ['NoSuchKey', sdk('NoSuchKey', 404), 'NotFound', true],
    ['HEAD 404', sdk('NotFound', 404), 'NotFound', true],
    ['NoSuchBucket', sdk('NoSuchBucket', 404), 'NotFound', true],
    ['AccessDenied', sdk('AccessDenied', 403), 'AccessDenied', true],
    ['HEAD 403 (no body)', sdk('Unknown', 403), 'AccessDenied', true],
    ['bad signature', sdk('SignatureDoesNotMatch', 403), 'AccessDenied', true],
    ['no credentials', sdk('CredentialsProviderError'), 'AccessDenied', true],
    ['SlowDown', sdk('SlowDown', 503), 'Throttled', false],
    ['503 other', sdk('ServiceUnavailable', 503), 'Unavailable', false],
    ['500', sdk('InternalError', 500), 'Unavailable', false],
    ['BadDigest', sdk('BadDigest', 400), 'Corrupt', true],
    ['socket timeout', sdk('TimeoutError'), 'Timeout', false],
    ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'Unavailable', false],
    ['ECONNRESET', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'Unavailable', false],
    ['AbortError', sdk('AbortError'), 'Aborted', false],
    ['unknown 400', sdk('InvalidArgument', 400), 'Io', false],
  ];
  for (const [label, err, code, permanent] of cases) {
    test(label, () => {
      const e = mapS3Error(err, c);
      assert.equal(e.code, code);
      assert.equal(e.permanent, permanent);
      assert.equal(e.tier, 'cold');
      assert.equal(e.key, 'k');
      assert.match(e.message, /^tier cold: get "k": /);
    });
  }
  test('our deadline is Timeout, the caller signal is Aborted, whatever the SDK said', () => {
    const fired = AbortSignal.abort();
    assert.equal(mapS3Error(sdk('AbortError'), { ...c, deadline: fired }).code, 'Timeout');
    assert.equal(mapS3Error(sdk('AbortError'), { ...c, caller: fired, deadline: fired }).code, 'Aborted');
    const te = new TierError('ShortObject', 'put', 'cold', 'k', 'x');
    assert.equal(mapS3Error(te, c), te);
  });
});
