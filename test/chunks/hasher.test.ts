// The hasher threads (src/chunks/hasher.ts): the same sums as createHash, in order, for
// concurrent batches, on one thread or two (the idle figure injected); the caller's buffers
// left as they were; run buffers never shared, a stale give ignored (slab-pool.ts); a job
// the thread cannot hash hashed here, the thread kept; a dead thread's jobs hashed here,
// their slabs given back (last: it leaves the hasher broken); OpenSSL by address
// (kernel/sha256-native.ts) equal to node:crypto, bounded, whole lengths only; idle.ts's
// throttle, staleness and cap (an injected /proc/stat).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { lentSlotsForTests } from '../../src/chunks/slab-pool.js';
import { idleCpus, setStatReaderForTests } from '../../src/chunks/idle.js';
import { configureHasherForTests, giveRunBuf, hasherInfo, hasherWorkersForTests, sha256Off, sha256Units, sha256UnitsHere, takeRunBuf } from '../../src/chunks/hasher.js';
import { koffiPath } from '../../src/kernel/libc.js';
import { NATIVE_SHA256_SOURCE } from '../../src/kernel/sha256-native.js';

/** createHash's SHA-256 of every `unit`-sized piece of `b` (the last one shorter), concatenated. */
const want = (b: Uint8Array, unit: number) => Buffer.concat(Array.from({ length: Math.ceil(b.length / unit) }, (_, k) => createHash('sha256').update(b.subarray(k * unit, (k + 1) * unit)).digest()));

test('sha256Off: every batch gets its own sums, in order; buffers stay usable', async () => {
  const batches = Array.from({ length: 20 }, (_, i) => {
    const run = randomBytes(64 * 1024 * (i % 5 + 1));
    return Array.from({ length: i % 5 + 1 }, (_, k) => run.subarray(k * 65536, (k + 1) * 65536));
  });
  const got = await Promise.all(batches.map((b) => sha256Off(b)));
  batches.forEach((b, i) => {
    assert.equal(got[i]!.length, b.length);
    b.forEach((buf, k) => {
      assert.equal(buf.length, 65536, 'the view is intact after the hash');
      assert.ok(got[i]![k]!.equals(createHash('sha256').update(buf).digest()), `batch ${i} chunk ${k}`);
    });
  });
  assert.deepEqual(await sha256Off([]), []);
});

test('sha256Units: a run buffer hashed in place, any other buffer copied; the last unit shorter', async () => {
  const unit = 16384;
  const bytes = 5 * unit + 1000;
  const run = takeRunBuf(bytes);
  assert.ok(run.buffer instanceof SharedArrayBuffer);
  randomBytes(bytes).copy(run);
  const plain = randomBytes(bytes);
  const [a, b] = await Promise.all([sha256Units(run, unit), sha256Units(plain, unit)]);
  assert.ok(a.equals(want(run, unit)), 'run buffer');
  assert.ok(b.equals(want(plain, unit)), 'plain buffer');
  assert.ok(sha256UnitsHere(run, unit).equals(a), 'on this thread: the same');
  giveRunBuf(run);
});

test('runs in flight at once: every run its own sums, on the threads, by OpenSSL where it loads', async () => {
  const unit = 16384;
  // 12 runs: more than the arena's 8 slots (the rest on plain slabs), odd lengths among them.
  const runs = Array.from({ length: 12 }, (_, i) => {
    const b = takeRunBuf(i % 3 === 0 ? 2 * 1024 * 1024 : 100_000 + i * 777);
    randomBytes(b.length).copy(b);
    return b;
  });
  const got = await Promise.all(runs.map((b) => sha256Units(b, unit)));
  runs.forEach((b, i) => assert.ok(got[i]!.equals(want(b, unit)), `run ${i}`));
  runs.forEach((b) => giveRunBuf(b));
  const info = hasherInfo();
  assert.equal(info.broken, false);
  assert.ok(info.threads >= 1);
  // This host's node exports OpenSSL's symbols (and Debian ships libcrypto.so.3): the native path is the one in use.
  assert.match(info.backend, /^OpenSSL SHA256/);
});

test('two threads while a CPU is idle: both answer, 12 runs at once their own sums, sha256Off batches in order; the second stops once idle', async (t) => {
  const defaults = { idle: null, threads: Math.min(2, availableParallelism()), idleStopMs: 10_000 };
  t.after(() => configureHasherForTests(defaults));
  configureHasherForTests({ idle: () => 2, threads: 2, idleStopMs: 200 }); // two CPUs idle, whatever this machine does
  const unit = 16384;
  const runs = Array.from({ length: 12 }, (_, i) => {
    const b = takeRunBuf(i % 3 === 0 ? 2 * 1024 * 1024 : 100_000 + i * 777);
    randomBytes(b.length).copy(b);
    return b;
  });
  const sums = runs.map((b) => sha256Units(b, unit));
  const batches = Array.from({ length: 8 }, (_, i) => Array.from({ length: i + 1 }, (_, k) => randomBytes(1000 + 100 * k)));
  const offs = batches.map((b) => sha256Off(b));
  assert.equal(hasherInfo().threads, 2, 'a second thread for the deep queue');
  const got = await Promise.all(sums);
  runs.forEach((b, i) => assert.ok(got[i]!.equals(want(b, unit)), `run ${i}`));
  const gotOff = await Promise.all(offs);
  batches.forEach((b, i) => b.forEach((buf, k) => assert.ok(gotOff[i]![k]!.equals(want(buf, buf.length)), `batch ${i} piece ${k}`)));
  const { done } = hasherInfo();
  assert.equal(done.length, 2);
  assert.ok(done[1]! > 0, `the second thread answered jobs too (${done})`);
  runs.forEach((b) => giveRunBuf(b));
  await delay(700);
  assert.equal(hasherInfo().threads, 1, 'the second thread stopped after 200 ms without a job');
  assert.equal(hasherInfo().broken, false, 'a stop is no failure');
  assert.ok((await sha256Units(runs[1]!, unit)).length > 0, 'the first thread still hashes');
});

test('a job the thread cannot hash is hashed here, counted and told; the thread stays', async (t) => {
  t.after(() => configureHasherForTests({ faultLens: null }));
  const before = hasherInfo();
  configureHasherForTests({ faultLens: (lens) => [NaN, ...lens.slice(1)] }); // fault injection: a bad message
  const b = randomBytes(3 * 16384 + 7);
  assert.ok((await sha256Units(b, 16384)).equals(want(b, 16384)), 'hashed on this thread instead');
  configureHasherForTests({ faultLens: null });
  const after = hasherInfo();
  assert.equal(after.jobErrors, before.jobErrors + 1);
  assert.match(after.firstTrouble ?? '', /could not hash a job of 49159 bytes \(piece length NaN\)/);
  assert.equal(after.broken, false, 'no thread lost');
  assert.equal(after.threads, before.threads);
  assert.ok((await sha256Units(b, 16384)).equals(want(b, 16384)));
  assert.equal(hasherInfo().done[0], after.done[0]! + 1, 'the next job answered by the thread');
});

test('run buffers lent at once never share memory, even when one is given back twice', () => {
  const a = takeRunBuf(2 * 1024 * 1024);
  giveRunBuf(a);
  giveRunBuf(a); // a caller's bug: one free slot, not two
  const b = takeRunBuf(2 * 1024 * 1024);
  const c = takeRunBuf(2 * 1024 * 1024);
  b.fill(1);
  c.fill(2);
  assert.equal(b.indexOf(2), -1, 'b untouched by c');
  assert.equal(c.indexOf(1), -1, 'c untouched by b');
  giveRunBuf(b);
  giveRunBuf(c);
});

test('a stale give (given back, its slot lent again, given back again) never frees the slot of its new holder', () => {
  // Arena slots, then plain slabs (past 2 MiB): a lone free slot or spare is the one the next take gets.
  for (const bytes of [2 * 1024 * 1024, 3 * 1024 * 1024]) {
    const held = Array.from({ length: 10 }, () => takeRunBuf(bytes)); // the arena's 8 slots all lent, then plain
    const a = held[0]!;
    giveRunBuf(a);
    const b = takeRunBuf(bytes);
    assert.ok(b.buffer === a.buffer && b.byteOffset === a.byteOffset, `${bytes}: b has the memory a had`);
    giveRunBuf(a); // stale: a's caller gives twice, after b took the slot
    const c = takeRunBuf(bytes);
    b.fill(1);
    c.fill(2);
    assert.equal(b.indexOf(2), -1, `${bytes}: b untouched by c`);
    for (const x of [b, c, ...held.slice(1)]) giveRunBuf(x);
  }
});

test('the native binding: digests as node:crypto, pieces bounded by their view and whole, null where koffi does not load', () => {
  const require = createRequire(import.meta.url);
  const load = new Function('require', `${NATIVE_SHA256_SOURCE}; return loadNativeSha256;`)(require) as (
    path: string | null,
    ch: typeof createHash,
  ) => { name: string; pieces(view: Uint8Array, lens: number[], out: Uint8Array): void } | null;
  assert.equal(load('/nonexistent/koffi.node', createHash), null, 'no koffi: null (node:crypto then)');
  const native = load(koffiPath(), createHash);
  assert.ok(native, 'koffi and OpenSSL load here');
  const view = new Uint8Array(new SharedArrayBuffer(100_000), 1000, 50_000);
  view.set(randomBytes(view.length));
  const lens = [16384, 0, 16384, 17232];
  const out = Buffer.alloc(32 * lens.length);
  native.pieces(view, lens, out);
  let at = 0;
  lens.forEach((n, k) => {
    assert.ok(out.subarray(32 * k, 32 * k + 32).equals(createHash('sha256').update(view.subarray(at, at + n)).digest()), `piece ${k}`);
    at += n;
  });
  assert.throws(() => native.pieces(view, [50_000, 1], Buffer.alloc(64)), RangeError, 'a piece past the view');
  assert.throws(() => native.pieces(view, [1, 1], Buffer.alloc(32)), RangeError, 'an out too short');
  // Each of these reached SHA256() as a wild size_t before the guard (NaN: a segfault).
  for (const bad of [NaN, -1, 1.5, Infinity, 2 ** 53]) assert.throws(() => native.pieces(view, [16384, bad], Buffer.alloc(64)), RangeError, `length ${bad}`);
});

test('idleCpus: /proc/stat read at most every 100 ms, a sample past 1 s is a first one, at most availableParallelism() CPUs, unreadable is none', (t) => {
  t.after(() => setStatReaderForTests(null));
  const n = Math.min(4, availableParallelism()); // the fake host below has 4 CPUs
  let reads = 0;
  let ticks = { total: 1000, idle: 400 };
  const stat = () => {
    reads++;
    const { total, idle } = ticks;
    return `cpu  ${total - idle} 0 0 ${idle} 0 0 0 0 0 0\n` + [0, 1, 2, 3].map((k) => `cpu${k} 1 0 0 1 0 0 0 0 0 0\n`).join('') + 'intr 1\n';
  };
  setStatReaderForTests(stat);
  assert.equal(idleCpus(1000), 0, 'a first sample: no figure yet');
  ticks = { total: 1100, idle: 450 };
  assert.equal(idleCpus(1050), 0);
  assert.equal(reads, 1, 'within 100 ms: no read');
  assert.equal(idleCpus(1150), 0.5 * n, 'half the ticks idle: half the CPUs counted');
  assert.equal(reads, 2);
  ticks = { total: 1200, idle: 550 };
  assert.equal(idleCpus(1200), 0.5 * n, 'throttled: the same figure');
  assert.equal(reads, 2);
  assert.equal(idleCpus(3200), 0, 'the last sample 2 s old: a first sample again');
  assert.equal(reads, 3);
  ticks = { total: 1300, idle: 650 };
  assert.equal(idleCpus(3300), n, 'all idle: every counted CPU, no more');
  setStatReaderForTests(() => {
    throw new Error('EACCES');
  });
  assert.equal(idleCpus(5000), 0, 'unreadable: none idle');
  setStatReaderForTests(() => 'garbage');
  assert.equal(idleCpus(6000), 0);
  assert.equal(idleCpus(6200), 0, 'unparsable: none idle');
});

test('without the native binding the threads hash with node:crypto: the same digests', () => {
  // A process of its own: the threads of this one already run with OpenSSL by address.
  const hasher = new URL('../../src/chunks/hasher.ts', import.meta.url).href;
  const script = `
    const { createHash, randomBytes } = await import('node:crypto');
    const h = await import(${JSON.stringify(hasher)});
    h.configureHasherForTests({ native: false });
    const b = h.takeRunBuf(3 * 16384 + 5);
    randomBytes(b.length).copy(b);
    const got = await h.sha256Units(b, 16384);
    const want = Buffer.concat([0, 1, 2, 3].map((k) => createHash('sha256').update(b.subarray(k * 16384, (k + 1) * 16384)).digest()));
    console.log(JSON.stringify({ same: got.equals(want), ...h.hasherInfo() }));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.deepEqual([info.same, info.backend, info.threads, info.broken], [true, 'node:crypto', 1, false]);
});

// Last: it leaves this process's hasher broken (no thread starts after a death).
test('a thread that dies: its pending jobs hashed here and their copy slabs given back; later jobs here too', async () => {
  const lent = lentSlotsForTests();
  for (const w of hasherWorkersForTests()) void w.terminate();
  // Posted before the exit is seen: pending when the thread dies, never answered by it.
  const bufs = [randomBytes(300_000), randomBytes(5)];
  const p = sha256Off(bufs);
  assert.equal(lentSlotsForTests(), lent + 1, 'the copy took an arena slot');
  const got = await p;
  bufs.forEach((b, k) => assert.ok(got[k]!.equals(want(b, b.length)), `piece ${k}`));
  assert.equal(lentSlotsForTests(), lent, 'the slot given back');
  const info = hasherInfo();
  assert.deepEqual([info.broken, info.threads, info.threadsFailed], [true, 0, 1]);
  const run = takeRunBuf(40_000);
  randomBytes(run.length).copy(run);
  assert.ok((await sha256Units(run, 16384)).equals(want(run, 16384)), 'later: on this thread');
  giveRunBuf(run);
});
