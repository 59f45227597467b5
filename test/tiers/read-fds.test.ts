// The local tier's kept read fds (src/tiers/local-fs.ts ReadFds): reused across ranged reads of one
// object, never serving an object that was deleted or replaced, closed when idle.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalTier } from '../../src/tiers/local.js';
import { ReadFds } from '../../src/tiers/local-fs.js';
import { TierError } from '../../src/tiers/tier.js';
import { takeRunBuf, giveRunBuf } from '../../src/chunks/hasher.js';
import { addressAligned } from '../../src/kernel/libc.js';
import { bodyOf, metaFor } from './contract.js';

const root = mkdtempSync(join(tmpdir(), 'tier-readfds-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** This process's fds open on `path`. */
const fdsOf = (path: string): string[] =>
  readdirSync('/proc/self/fd').filter((n) => {
    try {
      return readlinkSync(`/proc/self/fd/${n}`) === path;
    } catch {
      return false;
    }
  });
const fdsOn = (path: string): number => fdsOf(path).length;
const O_DIRECT = 0o40000;
/** How many of this process's fds on `path` were opened O_DIRECT. */
const directFdsOn = (path: string): number =>
  fdsOf(path).filter((n) => (Number.parseInt(/flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${n}`, 'utf8'))![1]!, 8) & O_DIRECT) !== 0).length;

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

test('a run buffer (aligned) reads whole blocks O_DIRECT, byte-exact; unaligned memory and the object\'s tail read through the page cache', async () => {
  const dir = join(root, 'direct');
  const t = new LocalTier('disk', dir);
  const size = 3 * 1024 * 1024 + 5000; // a tail that is no whole block
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  await t.put('big', bodyOf(data), size, metaFor(data));
  const p = join(dir, 'big');
  const run = takeRunBuf(2 * 1024 * 1024);
  try {
    assert.ok(addressAligned(run, 4096), 'run buffers are page-aligned');
    assert.equal(await t.getInto('big', { offset: 1024 * 1024, length: 2 * 1024 * 1024 }, run), 2 * 1024 * 1024);
    assert.ok(run.equals(data.subarray(1024 * 1024, 3 * 1024 * 1024)));
    assert.equal(directFdsOn(p), 1, 'the aligned read went O_DIRECT');
    // The tail: a whole-block range past EOF is read buffered, short.
    const tail = run.subarray(0, 8192);
    assert.equal(await t.getInto('big', { offset: 3 * 1024 * 1024, length: 8192 }, tail), 5000);
    assert.ok(tail.subarray(0, 5000).equals(data.subarray(3 * 1024 * 1024)));
    // Memory off a page boundary: through the page cache.
    const odd = Buffer.alloc(4096 + 1).subarray(1);
    assert.ok(!addressAligned(odd, 4096));
    assert.equal(await t.getInto('big', { offset: 4096, length: 4096 }, odd), 4096);
    assert.ok(odd.equals(data.subarray(4096, 8192)));
    assert.equal(fdsOn(p) - directFdsOn(p), 1, 'and one buffered fd');
  } finally {
    giveRunBuf(run);
  }
  await t.delete('big');
  assert.equal(fdsOn(p), 0, 'delete closes both');
});
