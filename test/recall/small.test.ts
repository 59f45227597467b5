// Small files (issue 11, goal 6): a dense file up to 256 KiB is filled whole at its first
// read with one GET, checked against the record's SHA-256 of the whole file (no GET of
// the sums object). A corrupt object is EIO with nothing written, as for any chunk.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Tier } from '../../src/tiers/tier.js';
import { makeReleased, pattern, residentOf, run, startHarness, stateOf, type Harness } from './harness.js';

const KiB = 1024;

describe('small files: whole at the first read, one GET (local tier, 64 KiB chunks)', () => {
  let h: Harness;
  /** Keys of every tier GET the service made (a counting wrapper around the real tier). */
  const gets: string[] = [];
  before(async () => {
    h = await startHarness({
      type: 'ext4',
      tuning: { chunk: 64 * KiB },
      wrapTier: (t) =>
        new Proxy(t, {
          get(target, prop, recv) {
            if (prop === 'get') return (key: string, ...rest: unknown[]) => (gets.push(key), (target.get as (...a: unknown[]) => unknown).call(target, key, ...rest));
            const v = Reflect.get(target, prop, recv) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        }) as Tier,
    });
  });
  after(async () => h.close());

  for (const size of [64 * KiB, 200 * KiB + 17]) {
    test(`cat of a released ${size}-byte file: exact bytes, one GET, no sums GET; archived`, async () => {
      const data = pattern(size, size);
      const name = `small-${size}.bin`;
      const path = await makeReleased(h, name, data);
      gets.length = 0;
      const r = await run('cat', [path]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data));
      assert.deepEqual(gets, [`k/${name}`], 'one GET of the object, none of its sums');
      assert.equal((await stateOf(path))?.state, 'archived');
    });
  }

  test('head -c 1 of a 200 KiB file fetches the whole file in one GET', async () => {
    const data = pattern(200 * KiB, 5);
    const path = await makeReleased(h, 'head.bin', data);
    gets.length = 0;
    const before = h.svc.stats().bytesFetched;
    const r = await run('head', ['-c', '1', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(data.subarray(0, 1)));
    assert.equal(gets.length, 1);
    assert.equal(h.svc.stats().bytesFetched - before, data.length);
    assert.ok((await run('cat', [path])).stdout.equals(data));
  });

  test('a corrupt small object: EIO, no byte reaches the reader, nothing resident; repaired: reads right', async () => {
    const data = pattern(100 * KiB, 9);
    const path = await makeReleased(h, 'bad.bin', data);
    const obj = join(h.fs.scratch, 'tier', 'k/bad.bin');
    const fd = openSync(obj, 'r+');
    try {
      writeSync(fd, Buffer.from([data[70 * KiB]! ^ 1]), 0, 1, 70 * KiB);
      const r = await run('cat', [path]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.equal(r.stdout.length, 0);
      const bits = await residentOf(path);
      assert.ok(!bits || /^(0x)?0*\s*$/.test(bits.toString('latin1')), `nothing resident: ${bits?.toString('latin1')}`);
      assert.notEqual((await stateOf(path))?.state, 'archived');
      writeSync(fd, data.subarray(70 * KiB, 70 * KiB + 1), 0, 1, 70 * KiB);
    } finally {
      closeSync(fd);
    }
    const again = await run('cat', [path]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.stdout.equals(data));
  });
});
