// Limiter (src/tiers/limiter.ts) on a fake clock: time moves only when the test says so.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter, LimiterAborted, type Cost, type LimitClass } from '../../src/tiers/limiter.js';
import { FakeClock } from '../ops/fake-clock.js';

const MiB = 1024 * 1024;

/** Starts `acquire` and records the fake time at which it was admitted (or the error). */
function track(l: Limiter, clock: FakeClock, cls: LimitClass, cost: Cost, signal?: AbortSignal) {
  const r: { at?: number; err?: unknown } = {};
  l.acquire(cls, cost, signal).then(
    () => (r.at = clock.now()),
    (e: unknown) => (r.err = e),
  );
  return r;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

describe('limiter', () => {
  test('no limit: every request is admitted at once, no batch cap, nothing counted as waiting', async () => {
    const clock = new FakeClock(0);
    const l = new Limiter({ concurrency: 1 }, clock);
    const rs = Array.from({ length: 50 }, () => track(l, clock, 'batch', { bytes: 64 * MiB, requests: 1 }));
    const slots = await Promise.all(Array.from({ length: 10 }, () => l.batchSlot()));
    await settle();
    assert.deepEqual(
      rs.map((r) => r.at),
      rs.map(() => 0),
    );
    assert.equal(slots.length, 10);
    assert.equal(clock.pending, 0);
    assert.equal(l.waitedMs('batch'), 0);
  });

  test('bwlimit: after one second of burst, bytes are admitted at the rate', async () => {
    const clock = new FakeClock(0);
    const l = new Limiter({ bytesPerSec: 1000 }, clock);
    const rs = Array.from({ length: 50 }, () => track(l, clock, 'batch', { bytes: 100 }));
    await clock.advance(10_000);
    const at = rs.map((r) => r.at!);
    assert.equal(at.filter((t) => t === 0).length, 10); // the burst: one second of rate
    for (let i = 10; i < 50; i++) assert.ok(at[i]! >= (i - 9) * 100 - 1, `request ${i} admitted at ${at[i]} ms, before ${(i - 9) * 100} ms`);
    assert.ok(at[49]! <= 4100, `the last one waited too long (${at[49]} ms)`);
    // Over any window from 0 to t, no more than burst + rate * t bytes went through.
    for (const t of at) assert.ok(at.filter((x) => x <= t).length * 100 <= 1000 + t + 1);
    assert.ok(l.waitedMs('batch') > 0);
    assert.equal(l.waitedMs('interactive'), 0);
  });

  test('an interactive request queued after batch waiters is admitted before them', async () => {
    const clock = new FakeClock(0);
    const l = new Limiter({ bytesPerSec: 1000 }, clock);
    await l.acquire('batch', { bytes: 1000 }); // empty the bucket
    const batch = Array.from({ length: 5 }, () => track(l, clock, 'batch', { bytes: 500 }));
    await clock.advance(100);
    assert.equal(l.waitedMs('batch'), 5 * 100); // waits in progress count already
    const inter = track(l, clock, 'interactive', { bytes: 500 });
    await clock.advance(10_000);
    assert.equal(inter.at, 500);
    assert.deepEqual(
      batch.map((r) => r.at),
      [1000, 1500, 2000, 2500, 3000],
    );
    assert.equal(l.waitedMs('interactive'), 400);
  });

  test('interactive requests keep going first while batch ones wait', async () => {
    const clock = new FakeClock(0);
    const l = new Limiter({ requestsPerSec: 2 }, clock);
    await l.acquire('batch', { requests: 2 });
    const b = track(l, clock, 'batch', { requests: 1 });
    const i = Array.from({ length: 3 }, () => track(l, clock, 'interactive', { requests: 1 }));
    await clock.advance(5000);
    assert.deepEqual(
      i.map((r) => r.at),
      [500, 1000, 1500],
    );
    assert.equal(b.at, 2000);
  });

  test('a request larger than the bucket waits for a full bucket, then leaves a debt', async () => {
    const clock = new FakeClock(0);
    const l = new Limiter({ bytesPerSec: MiB }, clock);
    await l.acquire('batch', { bytes: MiB / 2 });
    const big = track(l, clock, 'batch', { bytes: 64 * MiB });
    await clock.advance(1000);
    assert.equal(big.at, 500); // bucket full again after 0.5 s
    // 63 MiB of debt at 1 MiB/s: the next byte waits it out, interactive or not.
    const next = track(l, clock, 'interactive', { bytes: 1 });
    await clock.advance(100_000);
    assert.ok(next.at! >= 500 + 63_000 && next.at! <= 500 + 63_100, `admitted at ${next.at}`);
  });

  test('tpslimit: requests per second, independent of bytes', async () => {
    const clock = new FakeClock(0);
    const l = new Limiter({ requestsPerSec: 5, bytesPerSec: 1e12 }, clock);
    const rs = Array.from({ length: 20 }, () => track(l, clock, 'batch', { requests: 1, bytes: 10 }));
    await clock.advance(10_000);
    const at = rs.map((r) => r.at!);
    assert.equal(at.filter((t) => t === 0).length, 5);
    assert.equal(at[19], 3000);
    assert.deepEqual(at.slice(5, 8), [200, 400, 600]);
  });

  test('an aborted waiter rejects, costs nothing, and the next one moves up', async () => {
    const clock = new FakeClock(0);
    const l = new Limiter({ bytesPerSec: 1000 }, clock);
    await l.acquire('batch', { bytes: 1000 });
    const ac = new AbortController();
    const a = track(l, clock, 'batch', { bytes: 1000 }, ac.signal);
    const b = track(l, clock, 'batch', { bytes: 500 });
    await clock.advance(100);
    ac.abort();
    await clock.advance(5000);
    assert.ok(a.err instanceof LimiterAborted);
    assert.equal(b.at, 500);
    await assert.rejects(l.acquire('batch', { bytes: 1 }, ac.signal), LimiterAborted);
  });

  test('batch calls in flight are capped at concurrency - 1 while a limit is set', async () => {
    const clock = new FakeClock(0);
    const l = new Limiter({ bytesPerSec: 1000, concurrency: 3 }, clock);
    const r1 = await l.batchSlot();
    await l.batchSlot();
    let third = false;
    const p = l.batchSlot().then((r) => ((third = true), r));
    await settle();
    assert.equal(third, false);
    r1();
    r1(); // a second release of the same slot frees nothing more
    await p;
    assert.equal(third, true);
    let fourth = false;
    void l.batchSlot().then(() => (fourth = true));
    await settle();
    assert.equal(fourth, false);
    const one = new Limiter({ requestsPerSec: 1, concurrency: 1 }, clock);
    await one.batchSlot(); // concurrency 1 still lets one batch call run
  });

  test('close() fails the waits; configure() changes the rate for waiters already queued', async () => {
    const clock = new FakeClock(0);
    const l = new Limiter({ bytesPerSec: 100 }, clock);
    await l.acquire('batch', { bytes: 100 });
    const a = track(l, clock, 'batch', { bytes: 100 });
    l.configure({ bytesPerSec: 1000 });
    await clock.advance(0);
    assert.equal(a.at, 0); // a new bucket starts full
    await clock.advance(1000);
    await l.acquire('batch', { bytes: 1000 });
    const b = track(l, clock, 'batch', { bytes: 1000 });
    l.configure({});
    await settle();
    assert.equal(b.at, 1000); // no limit any more: admitted without time passing
    l.configure({ bytesPerSec: 10 });
    await l.acquire('batch', { bytes: 10 });
    const c = track(l, clock, 'interactive', { bytes: 10 });
    l.close();
    await settle();
    assert.ok(c.err instanceof LimiterAborted);
    await assert.rejects(l.acquire('batch', { bytes: 1 }), LimiterAborted);
  });
});
