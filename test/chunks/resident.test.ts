import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ResidentMap } from '../../src/chunks/resident.js';
import { feed, initialReadahead } from '../../src/recall/readahead.js';

describe('ResidentMap', () => {
  test('set, has, missing, complete, round trip', () => {
    const m = new ResidentMap(10);
    assert.deepEqual(m.missing({ start: 0, end: 10 }), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    m.set(0);
    m.set(3);
    m.set(9);
    assert.equal(m.has(3), true);
    assert.equal(m.has(4), false);
    assert.deepEqual(m.missing({ start: 2, end: 5 }), [2, 4]);
    assert.deepEqual(m.missing({ start: 8, end: 20 }), [8]); // clamped to the map
    const back = new ResidentMap(10, m.toBuffer());
    assert.deepEqual(back.runs(), [{ start: 0, end: 1 }, { start: 3, end: 4 }, { start: 9, end: 10 }]);
    for (let i = 0; i < 10; i++) back.set(i);
    assert.equal(back.complete(), true);
    assert.throws(() => back.set(10), RangeError);
  });

  test('a stored map with bits beyond the chunk count is not trusted past it', () => {
    const m = new ResidentMap(3, Buffer.from([0xff, 0xff]));
    assert.equal(m.count(), 3);
    assert.equal(new ResidentMap(0, Buffer.from([0xff])).complete(), true);
  });
});

describe('read-ahead', () => {
  const o = { chunk: 4, max: 16, minRun: 3 };
  test('opens after minRun bytes in order, grows with the run, capped; a jump resets', () => {
    let s = initialReadahead();
    const steps: [number, number, number][] = [
      // start, end, expected window after
      [0, 2, 0], // first access: no history
      [2, 3, 4], // run 3 >= minRun: as much as the run (3), rounded up to whole chunks
      [3, 5, 8], // run 5 -> 8
      [5, 13, 16], // run 13 -> 16
      [13, 21, 16], // run 21 -> 24, capped at 16
      [100, 102, 0], // jump: a new stream
      [101, 105, 8], // an overlapping odd-sized read continues it: run 5 -> 8
    ];
    for (const [a, b, w] of steps) {
      const r = feed(s, a, b, o);
      assert.equal(r.state.window, w, `after ${a}-${b}`);
      assert.deepEqual(r.ahead, { offset: b, length: w });
      s = r.state;
    }
  });
  test('a few small reads open no window with the default minRun (64 KiB)', () => {
    let s = initialReadahead();
    for (let i = 0; i < 5; i++) {
      const r = feed(s, i * 4096, (i + 1) * 4096, { chunk: 4 << 20, max: 16 << 20 });
      assert.equal(r.ahead.length, 0);
      s = r.state;
    }
  });
  test('max 0 disables read-ahead', () => {
    let s = initialReadahead();
    s = feed(s, 0, 4, { chunk: 4, max: 0, minRun: 1 }).state;
    assert.equal(feed(s, 4, 8, { chunk: 4, max: 0, minRun: 1 }).ahead.length, 0);
  });
});

describe('ResidentMap.missingRuns', () => {
  test('agrees with missing()', () => {
    const m = new ResidentMap(20);
    for (const i of [0, 1, 5, 6, 7, 19]) m.set(i);
    m.set(5); // setting twice counts once
    assert.equal(m.count(), 6);
    assert.deepEqual(m.missingRuns({ start: 0, end: 20 }), [{ start: 2, end: 5 }, { start: 8, end: 19 }]);
    const flat = m.missingRuns({ start: 3, end: 10 }).flatMap((r) => Array.from({ length: r.end - r.start }, (_, k) => r.start + k));
    assert.deepEqual(flat, m.missing({ start: 3, end: 10 }));
  });
});
