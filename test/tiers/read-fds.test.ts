// The local tier's kept read fds (src/tiers/local-fs.ts ReadFds): reused across ranged reads of one
// object, never serving an object that was deleted or replaced, closed when idle.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalTier } from '../../src/tiers/local.js';
import { ReadFds } from '../../src/tiers/local-fs.js';
import { TierError } from '../../src/tiers/tier.js';
import { bodyOf, metaFor } from './contract.js';

const root = mkdtempSync(join(tmpdir(), 'tier-readfds-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** This process's fds open on `path`. */
const fdsOn = (path: string): number =>
  readdirSync('/proc/self/fd').filter((n) => {
    try {
      return readlinkSync(`/proc/self/fd/${n}`) === path;
    } catch {
      return false;
    }
  }).length;

test('ranged reads of one object share one fd, closed once idle', async () => {
  const dir = join(root, 'share');
  const t = new LocalTier('disk', dir);
  const data = Buffer.from('0123456789abcdef'.repeat(4096));
  await t.put('k', bodyOf(data), data.length, metaFor(data));
  const dst = Buffer.alloc(4096);
  for (let i = 0; i < 8; i++) {
    assert.equal(await t.getInto('k', { offset: i * 4096, length: 4096 }, dst), 4096);
    assert.deepEqual(dst, data.subarray(i * 4096, (i + 1) * 4096));
  }
  assert.equal(fdsOn(join(dir, 'k')), 1);
  const fds = new ReadFds(50);
  const p = join(dir, 'k');
  await fds.use(p, async () => assert.equal(fdsOn(p), 2));
  await sleep(200);
  assert.equal(fdsOn(p), 1, 'the idle fd of the ReadFds with a 50 ms idle time is closed');
});

test('a deleted object is not found, not served from a kept fd', async () => {
  const dir = join(root, 'del');
  const t = new LocalTier('disk', dir);
  const data = Buffer.alloc(8192, 7);
  await t.put('k', bodyOf(data), data.length, metaFor(data));
  const dst = Buffer.alloc(8192);
  assert.equal(await t.getInto('k', { offset: 0, length: 8192 }, dst), 8192);
  await t.delete('k');
  assert.equal(fdsOn(join(dir, 'k')), 0);
  await assert.rejects(t.getInto('k', { offset: 0, length: 8192 }, dst), (e: unknown) => e instanceof TierError && e.code === 'NotFound');
});

test('an object put again under its key is read anew', async () => {
  const dir = join(root, 'again');
  const t = new LocalTier('disk', dir);
  const a = Buffer.alloc(4096, 1);
  const b = Buffer.alloc(4096, 2);
  await t.put('k', bodyOf(a), a.length, metaFor(a));
  const dst = Buffer.alloc(4096);
  await t.getInto('k', { offset: 0, length: 4096 }, dst);
  assert.equal(dst[0], 1);
  await t.put('k', bodyOf(b), b.length, metaFor(b));
  await t.getInto('k', { offset: 0, length: 4096 }, dst);
  assert.equal(dst[0], 2);
});

test('an fd in use when its key is evicted is closed once the read ends', async () => {
  const p = join(root, 'busy');
  writeFileSync(p, Buffer.alloc(4096, 3));
  const fds = new ReadFds(60_000);
  let release!: () => void;
  const held = fds.use(p, () => new Promise<void>((r) => (release = r)));
  await sleep(20);
  assert.equal(fdsOn(p), 1);
  fds.evict(p);
  assert.equal(fdsOn(p), 1, 'still in use');
  release();
  await held;
  await sleep(20);
  assert.equal(fdsOn(p), 0);
});
