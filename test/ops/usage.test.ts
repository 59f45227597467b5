import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fsUsage, maxUsage, usageFromStatfs } from '../../src/schedule/usage.js';
import { mountLoopFs } from '../helpers/loopfs.js';

describe('filesystem usage', () => {
  test('computed like df: reserved blocks are not available', () => {
    // 1000 blocks, 100 free of which 50 reserved for root: used 900 of 950 usable.
    const u = usageFromStatfs({ bsize: 4096, blocks: 1000, bfree: 100, bavail: 50 });
    assert.equal(u.percent, (900 / 950) * 100);
    assert.equal(u.usedBytes, 900 * 4096);
    assert.equal(u.totalBytes, 950 * 4096);
  });

  const fs = mountLoopFs('ext4', 64);
  after(() => fs.unmount());

  test('a real loop filesystem: matches df and rises when filled', async () => {
    const before = await fsUsage(fs.dir);
    writeFileSync(join(fs.dir, 'fill'), Buffer.alloc(32 * 1024 * 1024, 1));
    execFileSync('sync');
    const afterFill = await fsUsage(fs.dir);
    assert.ok(afterFill.percent > before.percent + 40, `${before.percent} -> ${afterFill.percent}`);
    const df = execFileSync('df', ['--output=pcent', fs.dir], { encoding: 'utf8' }).split('\n')[1]!.trim();
    assert.equal(`${Math.ceil(afterFill.percent)}%`, df); // df rounds up
  });

  test('maxUsage picks the fullest root; a missing root is an error naming it', async () => {
    const pct: Record<string, number> = { '/a': 40, '/b': 93.5, '/c': 70 };
    const probe = async (p: string) => ({ percent: pct[p]!, usedBytes: 0, totalBytes: 0 });
    const m = await maxUsage(['/a', '/b', '/c'], probe);
    assert.equal(m?.root, '/b');
    assert.equal(m?.usage.percent, 93.5);
    await assert.rejects(fsUsage(join(fs.dir, 'nope')), /statfs .*nope: ENOENT/);
  });
});
