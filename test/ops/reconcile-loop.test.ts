// The daemon's reconciliation scheduling (src/reconcile/reconcile-loop.ts) on a FAKE clock over a
// real (empty-but-one-file) directory and a real SQLite catalog: a pass at start, then
// every interval; requests coalesce while one is queued but not while one runs; passes
// never overlap; 0 disables the periodic passes; stop() ends the timers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Catalog } from '../../src/engine/catalog.js';
import { ReconcileLoop } from '../../src/reconcile/reconcile-loop.js';
import { silentLogger, type Logger } from '../../src/log.js';
import type { ReconcileCatalog } from '../../src/reconcile/reconcile.js';
import { FakeClock } from './fake-clock.js';

const HOUR = 3600_000;

function setup(intervalMs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'tier-recloop-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  writeFileSync(join(root, 'f'), 'x');
  const cat = new Catalog(join(dir, 'catalog.db'));
  const clock = new FakeClock(1_000_000);
  const done: string[] = [];
  let active = 0;
  let maxActive = 0;
  // Overlap detector: deps() is taken when a pass starts, all() is its last catalog call.
  const counting: ReconcileCatalog = {
    get: (d, i) => cat.get(d, i),
    ctimeOf: (d, i) => cat.ctimeOf(d, i),
    all: () => {
      active--;
      return cat.all();
    },
    upsert: (r) => cat.upsert(r),
    remove: (d, i) => cat.remove(d, i),
    markDeleted: (d, i, now) => cat.markDeleted(d, i, now),
    setCtime: (d, i, c) => cat.setCtime(d, i, c),
  };
  const log: Logger = { ...silentLogger, info: (msg, f) => void (msg === 'reconcile pass done' && done.push(String(f?.reason))) };
  const loop = new ReconcileLoop({ clock, log, intervalMs, hashMaxBytes: 1024, roots: () => [root], deps: () => {
      maxActive = Math.max(maxActive, ++active);
      return { catalog: counting, log };
    } });
  return {
    loop,
    clock,
    done,
    maxActive: () => maxActive,
    cleanup: () => {
      cat.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a pass at start, then one per interval; requests coalesce while queued; passes never overlap', async () => {
  const s = setup(24 * HOUR);
  try {
    s.loop.arm();
    assert.deepEqual(s.done, [], 'nothing before the timer fires (the worker says ready first)');
    await s.clock.advance(0);
    await s.loop.idle();
    assert.deepEqual(s.done, ['start']);
    await s.clock.advance(24 * HOUR - 1);
    await s.loop.idle();
    assert.deepEqual(s.done, ['start']);
    await s.clock.advance(1);
    await s.loop.idle();
    assert.deepEqual(s.done, ['start', 'interval']);
    // Three requests in a row: the first is queued, the others coalesce into it.
    s.loop.requestReconcile('overflow');
    s.loop.requestReconcile('overflow');
    s.loop.requestReconcile('overflow');
    await s.loop.idle();
    assert.deepEqual(s.done, ['start', 'interval', 'overflow']);
    // A direct run and a request at once: both run, one after the other.
    const direct = s.loop.run({ dryRun: true, hash: false });
    s.loop.requestReconcile('again');
    assert.equal((await direct).checked, 0, 'no file has a record');
    await s.loop.idle();
    assert.deepEqual(s.done, ['start', 'interval', 'overflow', 'again']);
    assert.equal(s.maxActive(), 1);
    await s.loop.stop();
    await s.clock.advance(48 * HOUR);
    assert.equal(s.done.length, 4, 'no pass after stop');
    s.loop.requestReconcile('late');
    await s.loop.idle();
    assert.equal(s.done.length, 4);
  } finally {
    s.cleanup();
  }
});

test('interval 0: no pass at start nor later; a request still runs one', async () => {
  const s = setup(0);
  try {
    s.loop.arm();
    await s.clock.advance(48 * HOUR);
    await s.loop.idle();
    assert.deepEqual(s.done, []);
    s.loop.requestReconcile('overflow');
    await s.loop.idle();
    assert.deepEqual(s.done, ['overflow']);
    await s.loop.stop();
  } finally {
    s.cleanup();
  }
});
