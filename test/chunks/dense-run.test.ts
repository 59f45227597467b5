// streamDenseRun (chunks/copy-chunk.ts) as recall/fill.ts fetchAndCommit calls it (the whole
// run one piece), with a FAULT-INJECTION tier: only getInto is real enough to fail; nothing
// else of it is called.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { streamDenseRun } from '../../src/chunks/copy-chunk.js';
import type { CopyIndex } from '../../src/chunks/extent-map.js';
import { TierError, type Tier } from '../../src/tiers/tier.js';
import type { StateRecord } from '../../src/record/state-record.js';

test('a failed data GET rejects at once, not after the sums GETs it ran beside', async () => {
  const failing = {
    name: 'faulty',
    getInto: () => new Promise<number>((_, rej) => setTimeout(() => rej(new TierError('Unavailable', 'get', 'faulty', 'k', 'refused')), 10)),
  } as unknown as Tier;
  const copy = { tier: 'faulty', key: 'k', size: 1 << 20, chunk: 16384, sumsSha: 'x' } as unknown as NonNullable<StateRecord['copy']>;
  let sumsDone = false;
  const slowSums = new Promise<CopyIndex>((_, rej) =>
    setTimeout(() => {
      sumsDone = true;
      rej(new Error('sums timed out'));
    }, 1500),
  );
  const t0 = performance.now();
  let took = 0;
  await assert.rejects(streamDenseRun(failing, copy, slowSums, 0, 8, 8, 5000, () => took++), (e: unknown) => e instanceof TierError && e.code === 'Unavailable');
  const ms = performance.now() - t0;
  assert.equal(sumsDone, false, `rejected only once the sums settled (${ms.toFixed(0)} ms)`);
  assert.equal(took, 0, 'nothing handed on from a failed GET');
  await slowSums.catch(() => {}); // let its timer end before the test does
});
