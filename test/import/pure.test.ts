// The pure parts of import: key -> path mapping, validators, the foreign record encoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapKey, normalPrefix } from '../../src/import/keymap.js';
import { parseValidator, stillMatches, validatorOf } from '../../src/tiers/validator.js';
import { decodeRecord, encodeRecord, type StateRecord } from '../../src/engine/state-record.js';

test('keys map byte for byte; unrepresentable keys are skipped with a reason', () => {
  assert.deepEqual(mapKey('a b/ü ✓/c.txt', ''), { dirs: ['a b', 'ü ✓'], name: 'c.txt' });
  assert.deepEqual(mapKey('p/x/y', 'p/'), { dirs: ['x'], name: 'y' });
  assert.deepEqual(mapKey('p/dir/', 'p/'), { dir: ['dir'] });
  assert.ok('skip' in mapKey('p/', 'p/'));
  assert.ok('skip' in mapKey('a//b', ''));
  assert.ok('skip' in mapKey('a/../b', ''));
  assert.ok('skip' in mapKey('a/./b', ''));
  assert.ok('skip' in mapKey('x'.repeat(256), ''));
  assert.ok('skip' in mapKey('.tier-import.abc', ''));
  assert.equal(normalPrefix('pub'), 'pub/');
  assert.equal(normalPrefix('/pub/'), 'pub/');
  assert.equal(normalPrefix(undefined), '');
});

test('validators: ETag preferred, Last-Modified with size otherwise', () => {
  assert.equal(validatorOf({ etag: '"abc"', lastModified: new Date(5) }), 'etag:"abc"');
  assert.equal(validatorOf({ lastModified: new Date(1234) }), 'lm:1234');
  assert.equal(validatorOf({}), null);
  assert.deepEqual(parseValidator('etag:"x"'), { kind: 'etag', etag: '"x"' });
  assert.equal(parseValidator('etag:'), null);
  assert.ok(stillMatches('etag:"a"', 3, { etag: '"a"', size: 3 }));
  assert.ok(!stillMatches('etag:"a"', 3, { etag: '"b"', size: 3 }));
  assert.ok(!stillMatches('etag:"a"', 3, { etag: '"a"', size: 4 }));
  assert.ok(stillMatches('lm:1000', 3, { lastModified: new Date(1000), size: 3 }));
  assert.ok(!stillMatches('lm:1000', 3, { lastModified: new Date(2000), size: 3 }));
});

test('a foreign copy round-trips through the compact record; older records still decode', () => {
  const r: StateRecord = {
    v: 1,
    state: 'released',
    pinned: false,
    gen: 1,
    copy: { tier: 't', key: 'a/b c', size: 10, mtimeNs: '1000000', sha256: '', archivedAt: 5, chunk: 1 << 20, foreign: 'etag:"d41d8cd98f00b204e9800998ecf8427e"' },
  };
  assert.deepEqual(decodeRecord(encodeRecord(r)), r);
  const plain = { ...r, copy: { ...r.copy!, foreign: undefined, sha256: 'ab', sumsSha: 'ab'.repeat(32) } };
  delete plain.copy.foreign;
  assert.deepEqual(decodeRecord(encodeRecord(plain)), plain);
  assert.equal(decodeRecord(Buffer.from('[1,"released",0,1,["t","k",1,"1","",1,1,0,""]]')), null, 'an empty validator is no record');
});
