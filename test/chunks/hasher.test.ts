// The hasher thread (src/chunks/hasher.ts): the same sums as createHash, in order, for
// concurrent batches; the caller's buffers are left as they were (copied, not moved).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { giveRunBuf, sha256Off, sha256Units, sha256UnitsHere, takeRunBuf } from '../../src/chunks/hasher.js';

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
