// A long sequential read from S3 (real RGW): read-ahead fetches in GETs of up to 16 MiB
// (fill.ts fillStream), each committed in 2 MiB pieces, verified, as their bytes arrive.
// FAULT INJECTION (StreamFaultsForTest): a GET that stalls, or whose bytes are corrupt, part
// way: the pieces before the fault are resident (committed before their GET ended), a
// reader waiting on the rest gets EIO within the tier timeout, nothing wrong is ever read,
// and a read once the fault is gone gets exact bytes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { S3Tier } from '../../src/tiers/s3.js';
import { TierError, type ByteRange, type Progress, type Tier } from '../../src/tiers/tier.js';
import { freshBucket, s3TestDecl, s3TestEnv } from '../helpers/rgw.js';
import { makeReleased, pattern, run, startHarness, type Harness } from './harness.js';

const MiB = 1024 * 1024;
const TIMEOUT = 2000;

interface Fault {
  kind: 'stall' | 'corrupt' | 'slow' | 'trickle';
  /** Bytes into the first data GET of at least `min` (4 MiB) at or past `from`. */
  cut: number;
  from: number;
  min?: number;
  hit?: ByteRange;
  at?: number;
}

/** Fault injection on getInto of the real tier: one GET stalls or turns corrupt `cut` bytes in. */
class StreamFaultsForTest {
  gets: ByteRange[] = [];
  /** GETs of the sums object (tier.get or getInto). */
  sumsGets: ByteRange[] = [];
  /** Every GET in the order asked: 'd' data, 's' sums, with its length. */
  order: { kind: 'd' | 's'; length: number }[] = [];
  fault: Fault | null = null;

  wrap(t: Tier): Tier {
    return new Proxy(t, {
      get: (target, prop) => {
        if (prop === 'get') {
          return (key: string, range?: ByteRange, ...rest: unknown[]) => {
            if (key.endsWith('.sums')) this.sumsGets.push(range ?? { offset: 0, length: -1 });
            if (key.endsWith('.sums')) this.order.push({ kind: 's', length: range?.length ?? -1 });
            return (target.get as (...a: unknown[]) => unknown)(key, range, ...rest);
          };
        }
        if (prop !== 'getInto') {
          const v = Reflect.get(target, prop, target) as unknown;
          return typeof v === 'function' ? v.bind(target) : v;
        }
        return (key: string, range: ByteRange, dst: Buffer, signal?: AbortSignal, expect?: string, progress?: Progress) => this.getInto(target, key, range, dst, signal, expect, progress);
      },
    });
  }

  private async getInto(t: Tier, key: string, range: ByteRange, dst: Buffer, signal?: AbortSignal, expect?: string, progress?: Progress): Promise<number> {
    const data = !key.endsWith('.sums');
    if (data) this.gets.push(range);
    else this.sumsGets.push(range);
    this.order.push({ kind: data ? 'd' : 's', length: range.length });
    const f = this.fault;
    if (!data || !f || f.hit || range.offset < f.from || range.length < (f.min ?? 4 * MiB)) return t.getInto!(key, range, dst, signal, expect, progress);
    f.hit = range;
    f.at = Date.now();
    if (f.kind === 'corrupt') {
      let flipped = false;
      return t.getInto!(key, range, dst, signal, expect, (have) => {
        if (have > f.cut && !flipped) {
          dst[f.cut]! ^= 0xff; // as if the server had sent it so
          flipped = true;
        }
        progress?.(have);
      });
    }
    if (f.kind === 'slow') {
      // All the bytes, reported 2 MiB at a time 0.75 timeout apart: slower in all than one
      // timeout, never a timeout without a byte, each 2 MiB within a timeout.
      const n = await t.getInto!(key, range, dst, signal, expect);
      for (let have = 0; have < n; ) {
        await new Promise((r) => setTimeout(r, TIMEOUT * 0.75));
        progress?.((have = Math.min(n, have + 2 * MiB)));
      }
      return n;
    }
    if (f.kind === 'trickle') {
      // `cut` bytes, then one more every 0.75 timeout, never the rest: a byte now and then
      // must not keep the GET (and a reader waiting on it) alive past its pieces' timeouts.
      await t.getInto!(key, range, dst, signal, expect, (have) => progress?.(Math.min(have, f.cut)));
      let have = f.cut;
      const tick = setInterval(() => progress?.(++have), TIMEOUT * 0.75);
      return new Promise<number>((_, reject) =>
        signal?.addEventListener(
          'abort',
          () => {
            clearInterval(tick);
            reject(new TierError('Aborted', 'get', t.name, key, 'trickled'));
          },
          { once: true },
        ),
      );
    }
    await t.getInto!(key, range, dst, signal, expect, (have) => progress?.(Math.min(have, f.cut)));
    // The rest never comes: a stalled body; only the caller's deadline ends it.
    return new Promise<number>((_, reject) => signal?.addEventListener('abort', () => reject(new TierError('Aborted', 'get', t.name, key, 'stalled')), { once: true }));
  }
}

describe('a long S3 stream: big GETs committed in verified pieces', () => {
  let h: Harness;
  const faults = new StreamFaultsForTest();
  const size = 40 * MiB + 12345;
  const data = pattern(size, 77);
  before(async () => {
    const env = s3TestEnv();
    const bucket = freshBucket(env, 'stream');
    h = await startHarness({
      sizeMiB: 300,
      tuning: { chunk: 16 * 1024, readahead: 16 * MiB, timeoutMs: TIMEOUT },
      makeTier: (_scratch, tuning) => new S3Tier(s3TestDecl(bucket, { tuning }, env)),
      wrapTier: (t) => faults.wrap(t),
    });
  });
  after(async () => h.close());

  test('cat: exact bytes in a few large GETs', async () => {
    const path = await makeReleased(h, 'a.bin', data);
    faults.gets = [];
    faults.sumsGets = [];
    faults.order = [];
    const r = await run('cat', [path]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(data));
    // Sums: once the stream reads in long GETs, one sums GET serves several of them (fill.ts
    // SUMS_AHEAD_RUNS), not one each.
    const firstLong = faults.order.findIndex((g) => g.kind === 'd' && g.length > 2 * MiB);
    const late = faults.order.slice(firstLong);
    const longs = late.filter((g) => g.kind === 'd' && g.length > 2 * MiB).length;
    const sumsLate = late.filter((g) => g.kind === 's').length;
    const seq = faults.order.map((g) => `${g.kind}${g.length}`).join(' ');
    assert.ok(firstLong >= 0 && longs >= 4, `long GETs: ${seq}`);
    assert.ok(sumsLate <= Math.ceil(longs / 2), `${sumsLate} sums GETs for ${longs} long data GETs: ${seq}`);
    // The window doubles from 64 KiB to 16 MiB; once it passes 4 MiB a top-up is one GET
    // (runs of 2 MiB before: none longer, 20 or more for 40 MiB).
    const sizes = faults.gets.map((g) => g.length).join(' ');
    assert.ok(faults.gets.some((g) => g.length >= 8 * MiB), `no GET of 8 MiB: ${sizes}`);
    assert.ok(faults.gets.filter((g) => g.length > 2 * MiB).length >= 4, `GETs past 2 MiB: ${sizes}`);
    assert.ok(faults.gets.length < 20, `${faults.gets.length} data GETs for 40 MiB: ${sizes}`);
  });

  test('a GET slower in all than the tier timeout, but never idle that long, is not cut', async () => {
    const path = await makeReleased(h, 'slow.bin', data);
    faults.fault = { kind: 'slow', cut: 0, from: 8 * MiB };
    faults.gets = [];
    const r = await run('cat', [path]);
    const hit = faults.fault.hit;
    faults.fault = null;
    assert.ok(hit, 'no GET of 4 MiB or more past 8 MiB: nothing was injected');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(data));
    const again = faults.gets.filter((g) => g !== hit && g.offset < hit.offset + hit.length && g.offset + g.length > hit.offset);
    assert.deepEqual(again, [], 'the slow GET was cut and its chunks fetched again');
  });

  test('a GET sending a byte now and then after 3 MiB: the reader gets EIO within its piece\'s timeout, not the whole GET\'s', async () => {
    const path = await makeReleased(h, 'trickle.bin', data);
    faults.fault = { kind: 'trickle', cut: 3 * MiB + 5000, from: 8 * MiB, min: 8 * MiB };
    const r = await run('cat', [path]);
    const end = Date.now();
    const { hit, at } = faults.fault;
    faults.fault = null;
    assert.ok(hit && at, 'no GET of 8 MiB or more past 8 MiB: nothing was injected');
    assert.ok(r.stdout.equals(data.subarray(0, r.stdout.length)), 'bytes read differ from the file');
    // Its second piece (2-4 MiB) was due 2 timeouts after the GET began (the whole GET: 4 or 8).
    assert.ok(end - at < 3 * TIMEOUT, `cat ended ${end - at} ms after the trickling GET began (GET of ${hit.length} bytes)`);
    if (r.code !== 0) assert.match(r.stderr, /Input\/output error/);
  });

  for (const kind of ['stall', 'corrupt'] as const) {
    test(`a GET that ${kind === 'stall' ? 'stalls' : 'turns corrupt'} 3 MiB in: its first piece is resident, nothing wrong is read, then exact bytes`, async () => {
      const path = await makeReleased(h, `${kind}.bin`, data);
      faults.fault = { kind, cut: 3 * MiB + 5000, from: 8 * MiB };
      const t0 = Date.now();
      const r = await run('cat', [path]);
      const took = Date.now() - t0;
      const hit = faults.fault.hit;
      faults.fault = null;
      assert.ok(hit, 'no GET of 4 MiB or more past 8 MiB: nothing was injected');
      // The failed read-ahead is the reader's EIO if it waits on the failed piece (within
      // the tier timeout), or, if it comes later, its own fetch of the chunks: exact either way.
      assert.ok(took < TIMEOUT + 8000, `cat took ${took} ms`);
      if (r.code !== 0) {
        assert.match(r.stderr, /Input\/output error/);
        assert.ok(r.stdout.length <= hit.offset + 3 * MiB + 5000, 'read past the fault');
      }
      assert.ok(r.stdout.equals(data.subarray(0, r.stdout.length)), 'bytes read differ from the file');
      // The GET's first 2 MiB piece was committed while its GET was still under way: no GET now.
      faults.gets = [];
      const piece = await run('dd', [`if=${path}`, 'bs=64K', `skip=${hit.offset}`, `count=${(2 * MiB) / 65536}`, 'iflag=skip_bytes', 'status=none']);
      assert.equal(piece.code, 0, piece.stderr);
      assert.ok(piece.stdout.equals(data.subarray(hit.offset, hit.offset + 2 * MiB)));
      const refetched = faults.gets.filter((g) => g.offset < hit.offset + 2 * MiB && g.offset + g.length > hit.offset);
      assert.deepEqual(refetched, [], 'the first piece was fetched again');
      // The fault is gone: every byte, exact.
      const again = await run('cat', [path]);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(again.stdout.equals(data));
    });
  }
});
