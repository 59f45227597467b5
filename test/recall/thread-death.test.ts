// The event thread dies holding an event it read but never answered (FAULT INJECTION:
// `event-thread-read 1 throw` in TIER_FAULT_FILE, read by the thread only). The service
// reports the death (in the daemon the worker then exits); the reader stays blocked, never
// sees zeros, and a successor on the same group answers it EIO from the in-flight record,
// then serves the file.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_WHOLE_FILE_FOR } from '../../src/dsl/ast.js';
import { silentLogger } from '../../src/log.js';
import { RecallService } from '../../src/recall/service.js';
import { makeReleased, pattern, run, startHarness, type Harness } from './harness.js';

describe('event thread death (ext4)', () => {
  let h: Harness;
  let died: Error | null = null;
  let successor: RecallService | null = null;
  const fault = join('/tmp', `tier-thread-fault-${process.pid}`);
  before(async () => {
    process.env.TIER_FAULT_FILE = fault; // the thread reads it when it starts
    h = await startHarness({ type: 'ext4', onThreadDeath: (e) => (died = e) });
  });
  after(async () => {
    delete process.env.TIER_FAULT_FILE;
    rmSync(fault, { force: true });
    await successor?.stop();
    await h.close();
  });

  test('the reader is answered EIO by the successor, never zeros; the successor then serves the file', async () => {
    const data = pattern(700_000, 33);
    const path = await makeReleased(h, 'dies.bin', data);
    writeFileSync(fault, 'event-thread-read 1 throw');
    const reader = run('cat', [path]);
    const t0 = Date.now();
    while (!died && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    rmSync(fault, { force: true }); // `throw` faults stay armed until removed: the successor runs clean
    assert.ok(died, 'the service reported the thread death');
    // Still blocked: no answer came from anywhere.
    const early = await Promise.race([reader.then(() => 'done'), new Promise((r) => setTimeout(() => r('blocked'), 300))]);
    assert.equal(early, 'blocked');
    successor = new RecallService({
      groupFd: h.group,
      mode: 'pre-content',
      tiers: new Map([[h.tier.name, h.tier]]),
      settings: { wholeFileFor: DEFAULT_WHOLE_FILE_FOR },
      inflightPath: h.inflightPath,
      log: silentLogger,
      tuning: new Map([[h.tier.name, h.tuning]]),
    });
    await successor.start();
    assert.ok(successor.stats().staleAnswered >= 1);
    const r = await reader;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Input\/output error/);
    assert.equal(r.stdout.length, 0);
    const again = await run('cat', [path]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.stdout.equals(data));
  });
});
