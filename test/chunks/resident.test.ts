import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ResidentMap } from '../../src/chunks/resident.js';
import { feed, initialReadahead, sumsBytes } from '../../src/recall/readahead.js';

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

  test('stored form: runs when strictly shorter than the bitmap, else the bitmap; both read back', () => {
    const m = new ResidentMap(65536);
    for (let i = 0; i < 128; i++) m.set(i); // head -c 2M at 16 KiB
    assert.deepEqual([...m.toStored()], [0, 0x80, 0x01], 'one run: missing 0, resident 128');
    const back = ResidentMap.fromStored(65536, m.toStored());
    assert.deepEqual(back.runs(), [{ start: 0, end: 128 }]);
    assert.equal(back.count(), 128);
    // tar tvf | head: a chunk or two per header, scattered across a 512 MiB file.
    const tar = new ResidentMap(32768);
    for (let h = 0; h < 40; h++) {
      tar.set(h * 811);
      if (h % 2) tar.set(h * 811 + 1);
    }
    const st = tar.toStored();
    assert.ok(st.length <= 4 * 40, `${st.length} bytes for 40 runs`);
    assert.deepEqual(ResidentMap.fromStored(32768, st).runs(), tar.runs());
    // A random half: the bitmap is shorter, and is what is stored.
    const half = new ResidentMap(1000);
    for (let i = 0; i < 1000; i++) if ((i * 7919) % 13 < 6) half.set(i);
    assert.equal(half.toStored().length, 125);
    assert.deepEqual(ResidentMap.fromStored(1000, half.toStored()).runs(), half.runs());
    // Random patterns of every density round-trip.
    for (let seed = 1; seed < 40; seed++) {
      const n = 1 + ((seed * 977) % 5000);
      const r = new ResidentMap(n);
      let x = seed;
      for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        if (x % 100 < seed * 2.5) r.set(i);
      }
      const again = ResidentMap.fromStored(n, r.toStored());
      assert.deepEqual(again.toBuffer(), r.toBuffer(), `seed ${seed}`);
    }
    // The whole file: one run (never stored in practice: the file is then archived).
    const full = new ResidentMap(65536);
    for (let i = 0; i < 65536; i++) full.set(i);
    assert.ok(full.toStored().length <= 4);
    assert.equal(ResidentMap.fromStored(65536, full.toStored()).complete(), true);
  });

  test('stored form: an old bitmap (exactly ceil(n/8) bytes) reads as before; malformed runs read for what they cover, never past n', () => {
    assert.deepEqual(ResidentMap.fromStored(3, Buffer.from([0x02])).runs(), [{ start: 1, end: 2 }]);
    assert.deepEqual(ResidentMap.fromStored(20, Buffer.from([0x0f, 0, 0x08])).runs(), [{ start: 0, end: 4 }, { start: 19, end: 20 }]);
    // Runs past the chunk count stop at it; a truncated varint ends the map there.
    assert.deepEqual(ResidentMap.fromStored(100, Buffer.from([98, 50])).runs(), [{ start: 98, end: 100 }]);
    assert.deepEqual(ResidentMap.fromStored(1000, Buffer.from([2, 3, 0x80])).runs(), [{ start: 2, end: 5 }]);
    assert.equal(ResidentMap.fromStored(1000, Buffer.alloc(0)).count(), 0);
    assert.equal(ResidentMap.fromStored(1000, null).count(), 0);
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
      // run 3 >= minRun: as much as the run, in whole chunks, but everything the stream
      // fetched (chunk 0, [0, 4)) within twice what it read (6): up to 4
      [2, 3, 1],
      [3, 5, 3], // run 5: chunks up to 8 (<= 10)
      [5, 13, 11], // run 13: up to 24 (<= 26)
      [13, 21, 16], // run 21: up to 40 (<= 42), capped at 16
      [100, 102, 0], // jump: a new stream
      [101, 105, 3], // an overlapping odd-sized read continues it: run 5, chunks 25..26 (8 <= 10)
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
  test('a stream is fetched at most twice what it read, sums included (head -c 1M, 512 MiB, 16 KiB chunks, two-level sums)', () => {
    const chunk = 16384;
    const sums = { once: (32768 / 64) * 32, block: 64 * 32, perBlock: 64, join: 16384 };
    for (const withSums of [false, true]) {
      const o = { chunk, max: 16 << 20, ...(withSums ? { sums } : {}) };
      let s = initialReadahead();
      let top = 0; // chunks [0, top) fetched: the reads' and the windows'
      for (let at = 0; at < 1 << 20; at += 131072) {
        const r = feed(s, at, at + 131072, o);
        s = r.state;
        top = Math.max(top, Math.ceil((at + 131072) / chunk), Math.ceil((r.ahead.offset + r.ahead.length) / chunk));
      }
      const fetched = top * chunk + (withSums ? sumsBytes(sums, 0, top) : 0);
      if (withSums) assert.ok(fetched <= 2 << 20 && fetched > (2 << 20) - 4 * chunk, `fetched ${fetched}`);
      else assert.equal(fetched, 2 << 20, 'without sums the window is as large as the read');
    }
  });
  test('a backward stream (tail, tac, a b-tree walked down) gets the same window below it; forward again turns it', () => {
    // The mirror of the forward steps above: the same run lengths give the same windows.
    const steps: [number, number, number, boolean][] = [
      // start, end, expected window below start after, backward
      [98, 100, 0, false], // first access: no history
      [97, 98, 1, true], // run 3: chunks from 24 up ([96, 100): 4 <= 6), 1 byte below 97
      [95, 97, 3, true], // run 5: [92, 100), 8 <= 10
      [87, 95, 11, true], // run 13: [76, 100), 24 <= 26
      [79, 87, 16, true], // run 21: [60, 100) is 40 <= 42, capped at 16
      [200, 202, 0, false], // a jump: a new stream
      [197, 201, 1, true], // an overlapping odd-sized read below continues it backward: run 5, [196, 204)
    ];
    let s = initialReadahead();
    for (const [a, b, w, down] of steps) {
      const r = feed(s, a, b, o);
      assert.equal(r.state.window, w, `after ${a}-${b}`);
      assert.equal(r.state.down, down, `after ${a}-${b}`);
      assert.deepEqual(r.ahead, down ? { offset: a - w, length: w } : { offset: b, length: 0 });
      s = r.state;
    }
    // Forward from the stream's last read: a forward stream, its window above.
    const f = feed(s, 199, 201, o);
    assert.equal(f.state.down, false);
    assert.equal(f.ahead.offset, 201);
    // Down to the file's start: the window never reaches below 0.
    s = initialReadahead();
    for (let at = 40; at >= 0; at -= 4) {
      const r = feed(s, at, at + 4, o);
      if (at < 40) assert.ok(r.ahead.offset >= 0 && r.ahead.offset + r.ahead.length === at, `at ${at}: ${JSON.stringify(r.ahead)}`);
      s = r.state;
    }
  });
  test('a backward stream is fetched at most twice what it read, sums included (tail of a 512 MiB file, 16 KiB chunks)', () => {
    const chunk = 16384;
    const size = 512 << 20;
    const sums = { once: (32768 / 64) * 32, block: 64 * 32, perBlock: 64, join: 16384 };
    let s = initialReadahead();
    let low = size / chunk; // chunks [low, size / chunk) fetched: the reads' and the windows'
    for (let at = size - 8192; at >= size - (1 << 20); at -= 8192) {
      const r = feed(s, at, at + 8192, { chunk, max: 16 << 20, sums });
      s = r.state;
      low = Math.min(low, Math.floor(at / chunk), Math.floor(r.ahead.offset / chunk));
    }
    const fetched = (size / chunk - low) * chunk + sumsBytes(sums, low, size / chunk);
    assert.ok(s.window > 0, 'a window opened');
    assert.ok(fetched <= 2 << 20, `fetched ${fetched} for 1 MiB read`);
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
