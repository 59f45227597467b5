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

test('directory index pages: nginx and Apache autoindex', async () => {
  const { parseIndex, keyUrl } = await import('../../src/tiers/http-index.js');
  const nginx = `<html><head><title>Index of /pub/</title></head><body><h1>Index of /pub/</h1><hr><pre><a href="../">../</a>
<a href="dir%20a/">dir a/</a>                                             06-Dec-2026 16:59       -
<a href="%C3%BC%20%E2%9C%93%20%26%20%3Cx%3E.bin">ü ✓ &amp; &lt;x&gt;.bin</a>                  06-Dec-2026 16:59     2097155
<a href="a&amp;b.txt">a&amp;b.txt</a>                                          06-Dec-2026 16:59      16
</pre><hr></body></html>`;
  assert.deepEqual(parseIndex(nginx), [
    { name: 'dir a', dir: true },
    { name: 'ü ✓ & <x>.bin', dir: false },
    { name: 'a&b.txt', dir: false },
  ]);
  const apache = `<table><tr><th><a href="?C=N;O=D">Name</a></th></tr>
<tr><td><a href="/pub/">Parent Directory</a></td></tr>
<tr><td><a href="linux-6.1.tar.xz">linux-6.1.tar.xz</a></td><td align="right">2022-12-11 22:15  </td><td align="right">128M</td></tr>
<tr><td><a href="sub/">sub/</a></td></tr><tr><td><a href="http://elsewhere/x">x</a></td></tr></table>`;
  assert.deepEqual(parseIndex(apache), [
    { name: 'linux-6.1.tar.xz', dir: false },
    { name: 'sub', dir: true },
  ]);
  assert.equal(keyUrl('http://h/pub/', 'ü dir/a#b?.txt'), 'http://h/pub/%C3%BC%20dir/a%23b%3F.txt');
});

test('ownership: the directory\'s owner and 0644/0755 by default; options parsed like rclone\'s, refused past 0777', async () => {
  const { parseId, parsePerms, resolveOwnership } = await import('../../src/import/ownership.js');
  assert.deepEqual(resolveOwnership({}, { uid: 1000, gid: 100 }), { uid: 1000, gid: 100, filePerms: 0o644, dirPerms: 0o755 });
  assert.deepEqual(resolveOwnership({ uid: 0, filePerms: 0o600 }, { uid: 1000, gid: 100 }), { uid: 0, gid: 100, filePerms: 0o600, dirPerms: 0o755 });
  assert.equal(parsePerms('0640', '--file-perms'), 0o640);
  assert.equal(parsePerms('750', '--dir-perms'), 0o750);
  assert.equal(parsePerms('0o777', '--dir-perms'), 0o777);
  assert.throws(() => parsePerms('4755', '--file-perms'), /--file-perms "4755": an octal mode of permission bits, at most 0777/);
  assert.throws(() => parsePerms('rw-r--r--', '--file-perms'), /octal/);
  assert.throws(() => parsePerms('0888', '--file-perms'), /octal/);
  const lookup = (n: string) => (n === 'alice' ? 1001 : null);
  assert.equal(parseId('alice', '--uid', lookup), 1001);
  assert.equal(parseId('42', '--gid', lookup), 42);
  assert.throws(() => parseId('bob', '--uid', lookup), /--uid "bob": no such user/);
  assert.throws(() => parseId('nobodygroup', '--gid', lookup), /no such group/);
  assert.throws(() => parseId('4294967295', '--uid', lookup), /ids are 0 to 4294967294/);
});

test('`tier check`: archive or release to an http tier is an error at the tier name; import-only use passes', async () => {
  const { runCli } = await import('../daemon/harness.js');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'check-http-'));
  try {
    const head = 'tier web { http "http://127.0.0.1:1/pub/" }\ntier nas { local "/t" }\nfileset fs { root "/d" }\n';
    const bad = join(dir, 'bad.hsmpolicy');
    writeFileSync(bad, `${head}policy p on fs {\n  rule a: size > 1GiB -> archive to web\n  rule b: true -> release to web\n}\n`);
    const r = await runCli(['check', bad]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /bad\.hsmpolicy:5:37: error\[read-only-tier\]: tier 'web' is an http tier: it is read-only/);
    assert.match(r.stderr, /bad\.hsmpolicy:6:30: error\[read-only-tier\]: .*release needs a local or s3 tier/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const good = join(dir, 'good.hsmpolicy');
    writeFileSync(good, `${head}policy p on fs {\n  rule b: true -> release to nas\n}\n`);
    const g = await runCli(['check', good]);
    assert.equal(g.code, 0, g.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
