// The decision of which chunks the partial re-release verifies and never fills
// (src/chunks/resident-union.ts), on real resident maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResidentMap } from '../../src/chunks/resident.js';
import { residentToVerify } from '../../src/chunks/resident-union.js';

const map = (n: number, set: number[]): Buffer => {
  const m = new ResidentMap(n);
  for (const i of set) m.set(i);
  return m.toBuffer();
};
const bits = (m: ResidentMap): number[] => [...Array(m.chunks).keys()].filter((i) => m.has(i));

test('no cached entry: the on-disk bitmap alone', () => {
  const v = residentToVerify(6, map(6, [1, 3]), null);
  assert.ok(v.ok);
  assert.deepEqual(bits(v.map), [1, 3]);
  assert.deepEqual(v.memoryOnly, []);
});

test('a bit only in memory (storing the bitmap failed) is resident: verified, never filled', () => {
  const v = residentToVerify(6, map(6, [1]), { bits: map(6, [1, 3]), diverged: false, unstorable: false });
  assert.ok(v.ok);
  assert.deepEqual(bits(v.map), [1, 3]);
  assert.deepEqual(v.memoryOnly, [3]);
});

test('the union of both, whichever side has more; no bitmap on disk at all', () => {
  const v = residentToVerify(10, map(10, [0, 9]), { bits: map(10, [2, 9]), diverged: false, unstorable: true });
  assert.ok(v.ok);
  assert.deepEqual(bits(v.map), [0, 2, 9]);
  assert.deepEqual(v.memoryOnly, [2]);
  const w = residentToVerify(10, null, { bits: map(10, [4]), diverged: false, unstorable: true });
  assert.ok(w.ok);
  assert.deepEqual(bits(w.map), [4]);
});

test('a diverged entry (the service saw a write): skipped, left to the service', () => {
  const v = residentToVerify(6, map(6, [1]), { bits: map(6, [1]), diverged: true, unstorable: false });
  assert.equal(v.ok, false);
  assert.match(!v.ok ? v.why : '', /written since/);
});
