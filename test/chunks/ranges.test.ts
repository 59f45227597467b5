import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chunkBytes, chunkSpan, clampToSize, coalesce, findMissing, insert, present, type Range } from '../../src/chunks/ranges.js';

const R = (start: number, end: number): Range => ({ start, end });

describe('ranges', () => {
  const coalesceCases: [string, Range[], Range[]][] = [
    ['empty', [], []],
    ['drops empty', [R(3, 3)], []],
    ['sorts', [R(5, 6), R(1, 2)], [R(1, 2), R(5, 6)]],
    ['merges overlap', [R(1, 4), R(3, 6)], [R(1, 6)]],
    ['merges adjacent', [R(1, 3), R(3, 5)], [R(1, 5)]],
    ['contained', [R(0, 10), R(2, 3)], [R(0, 10)]],
  ];
  for (const [name, input, want] of coalesceCases) test(`coalesce: ${name}`, () => assert.deepEqual(coalesce(input), want));

  test('insert keeps the list coalesced', () => {
    let l: Range[] = [];
    l = insert(l, R(4, 6));
    l = insert(l, R(0, 2));
    l = insert(l, R(2, 4));
    assert.deepEqual(l, [R(0, 6)]);
  });

  const missingCases: [string, Range[], Range, Range[]][] = [
    ['nothing present', [], R(0, 5), [R(0, 5)]],
    ['all present', [R(0, 10)], R(2, 5), []],
    ['hole in the middle', [R(0, 2), R(4, 6)], R(0, 6), [R(2, 4)]],
    ['edges', [R(2, 4)], R(0, 6), [R(0, 2), R(4, 6)]],
    ['present after want', [R(8, 9)], R(0, 3), [R(0, 3)]],
    ['present before want', [R(0, 1)], R(3, 5), [R(3, 5)]],
    ['empty want', [], R(3, 3), []],
  ];
  for (const [name, p, w, want] of missingCases) test(`findMissing: ${name}`, () => assert.deepEqual(findMissing(p, w), want));

  test('present', () => {
    assert.equal(present([R(0, 4)], R(1, 3)), true);
    assert.equal(present([R(0, 2), R(3, 4)], R(1, 4)), false);
    assert.equal(present([], R(2, 2)), true);
  });

  const clampCases: [string, number, number, number, Range | null][] = [
    ['inside', 0, 4096, 10000, R(0, 4096)],
    ['crosses EOF', 8192, 4096, 10000, R(8192, 10000)],
    ['past EOF', 12288, 4096, 10000, null],
    ['empty file', 0, 4096, 0, null],
  ];
  for (const [name, o, l, s, want] of clampCases) test(`clampToSize: ${name}`, () => assert.deepEqual(clampToSize(o, l, s), want));

  test('chunkSpan and chunkBytes', () => {
    assert.deepEqual(chunkSpan(R(0, 1), 4), R(0, 1));
    assert.deepEqual(chunkSpan(R(3, 5), 4), R(0, 2));
    assert.deepEqual(chunkSpan(R(4, 8), 4), R(1, 2));
    assert.deepEqual(chunkBytes(2, 4, 10), R(8, 10));
    assert.deepEqual(chunkBytes(0, 4, 10), R(0, 4));
  });
});
