import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DEFAULT_TUNING } from '../../src/dsl/ast.js';
import { LocalTier } from '../../src/tiers/local.js';
import { bodyOf, metaFor, tierContract } from './contract.js';

const root = mkdtempSync(join(tmpdir(), 'tier-local-'));
after(() => rmSync(root, { recursive: true, force: true }));

tierContract('local', async () => new LocalTier('disk', join(root, 'contract'), DEFAULT_TUNING), {
  partSize: 5 * 1024 * 1024,
});

describe('local tier specifics', () => {
  test('objects are plain files under the directory; keys with / make subdirectories', async () => {
    const dir = join(root, 'plain');
    const t = new LocalTier('disk', dir);
    const data = Buffer.from('hello tier');
    await t.put('a/b/c.bin', bodyOf(data), data.length, metaFor(data));
    assert.deepEqual(readdirSync(join(dir, 'a/b')).sort(), ['c.bin', 'c.bin.meta.json']);
    assert.equal(readdirSync(join(dir, 'a/b')).filter((n) => n.startsWith('.tmp-')).length, 0);
  });

  test('sweepTemp removes old temp files only', async () => {
    const dir = join(root, 'sweep');
    const t = new LocalTier('disk', dir);
    const data = Buffer.from('x');
    await t.put('d/keep', bodyOf(data), 1, metaFor(data));
    const oldTmp = join(dir, 'd', '.tmp-old');
    const newTmp = join(dir, 'd', '.tmp-new');
    writeFileSync(oldTmp, 'junk');
    writeFileSync(newTmp, 'junk');
    const hourAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(oldTmp, hourAgo, hourAgo);
    assert.equal(await t.sweepTemp(3600_000), 1);
    assert.equal(existsSync(oldTmp), false);
    assert.equal(existsSync(newTmp), true);
    assert.equal((await t.get('d/keep')).toString(), 'x');
    // temp files never show up in listings
    const keys: string[] = [];
    for await (const o of t.list('')) keys.push(o.key);
    assert.deepEqual(keys, ['d/keep']);
  });

  test('a sidecar that does not belong to the data file (crash between renames) is ignored', async () => {
    const dir = join(root, 'stale');
    const t = new LocalTier('disk', dir);
    const a = Buffer.from('first version');
    await t.put('k', bodyOf(a), a.length, metaFor(a));
    // Simulate: the data file was replaced by another inode while the sidecar stayed.
    writeFileSync(join(dir, 'other'), a);
    renameSync(join(dir, 'other'), join(dir, 'k'));
    const info = await t.stat('k');
    assert.equal(info?.size, a.length);
    assert.equal(info?.meta, undefined);
  });
});
