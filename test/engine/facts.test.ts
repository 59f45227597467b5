import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deriveState, residentBytes, usagePercent } from '../../src/engine/facts.js';
import type { StateRecord } from '../../src/record/state-record.js';

const rec = (state: StateRecord['state'], copy = true): StateRecord => ({
  v: 1,
  state,
  pinned: false,
  gen: 1,
  ...(copy ? { copy: { tier: 't', key: 'k', size: 100, mtimeNs: '5', sha256: 's', archivedAt: 1, chunk: 4096 } } : {}),
});

test('deriveState', () => {
  const same = { size: 100, mtimeNs: '5' };
  const touched = { size: 100, mtimeNs: '6' };
  const grown = { size: 101, mtimeNs: '6' };
  const table: [StateRecord | null, { size: number; mtimeNs: string }, string][] = [
    [null, same, 'resident'],
    [rec('resident', false), same, 'resident'],
    [rec('archived'), same, 'archived'],
    [rec('archived'), touched, 'dirty'],
    [rec('archived'), grown, 'dirty'],
    [rec('released'), same, 'released'],
    [rec('released'), touched, 'released'], // touch: data still only in the tier
    [rec('released'), grown, 'dirty'],
    [rec('partial'), touched, 'partial'],
    [rec('dirty'), same, 'dirty'],
  ];
  for (const [r, st, want] of table) assert.equal(deriveState(r, st), want, `${r?.state} ${JSON.stringify(st)}`);
});

test('residentBytes is capped at the size; usage is used / (used + avail)', () => {
  assert.equal(residentBytes({ size: 1, blocks: 8 }), 1);
  assert.equal(residentBytes({ size: 10_000, blocks: 0 }), 0);
  assert.equal(usagePercent({ usedBytes: 30, availBytes: 70 }), 30);
  assert.equal(usagePercent({ usedBytes: 0, availBytes: 0 }), 0);
});
