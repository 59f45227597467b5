// The hasher threads (src/chunks/hasher.ts): the same sums as createHash, in order, for
// concurrent batches; the caller's buffers are left as they were (copied, not moved); run
// buffers never shared (slab-pool.ts); OpenSSL by address (kernel/sha256-native.ts) equal
// to node:crypto, bounded by its view, null where koffi does not load; the idle-CPU figure sane.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { idleCpus, setStatReaderForTests } from '../../src/chunks/idle.js';
import { giveRunBuf, hasherInfo, sha256Off, sha256Units, sha256UnitsHere, takeRunBuf } from '../../src/chunks/hasher.js';
import { koffiPath } from '../../src/kernel/libc.js';
import { NATIVE_SHA256_SOURCE } from '../../src/kernel/sha256-native.js';

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
  const want = (b: Buffer) => Buffer.concat(Array.from({ length: Math.ceil(b.length / unit) }, (_, k) => createHash('sha256').update(b.subarray(k * unit, (k + 1) * unit)).digest()));
  const run = takeRunBuf(bytes);
  assert.ok(run.buffer instanceof SharedArrayBuffer);
  randomBytes(bytes).copy(run);
  const plain = randomBytes(bytes);
  const [a, b] = await Promise.all([sha256Units(run, unit), sha256Units(plain, unit)]);
  assert.ok(a.equals(want(run)), 'run buffer');
  assert.ok(b.equals(want(plain)), 'plain buffer');
  assert.ok(sha256UnitsHere(run, unit).equals(a), 'on this thread: the same');
  giveRunBuf(run);
});

test('runs in flight at once: every run its own sums, on the threads, by OpenSSL where it loads', async () => {
  const unit = 16384;
  const want = (b: Buffer) => Buffer.concat(Array.from({ length: Math.ceil(b.length / unit) }, (_, k) => createHash('sha256').update(b.subarray(k * unit, (k + 1) * unit)).digest()));
  // 12 runs: more than the arena's 8 slots (the rest on plain slabs), odd lengths among them.
  const runs = Array.from({ length: 12 }, (_, i) => {
    const b = takeRunBuf(i % 3 === 0 ? 2 * 1024 * 1024 : 100_000 + i * 777);
    randomBytes(b.length).copy(b);
    return b;
  });
  const got = await Promise.all(runs.map((b) => sha256Units(b, unit)));
  runs.forEach((b, i) => assert.ok(got[i]!.equals(want(b)), `run ${i}`));
  runs.forEach((b) => giveRunBuf(b));
  const info = hasherInfo();
  assert.equal(info.broken, false);
  assert.ok(info.threads >= 1);
  // This host's node exports OpenSSL's symbols (and Debian ships libcrypto.so.3): the native path is the one in use.
  assert.match(info.backend, /^OpenSSL SHA256/);
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
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { same: true, backend: 'node:crypto', threads: 1, broken: false });
});
