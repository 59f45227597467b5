// InodeSet (reconcile's "inodes this pass found"): membership exact per device, across
// growth past its first array, with duplicates, and inode numbers past 2^32.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InodeSet } from '../../src/reconcile/inode-set.js';

test('has() answers exactly what was added, per device', () => {
  const s = new InodeSet();
  const added = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const ino = (i * 7919) % 100_003;
    s.add(i % 3 === 0 ? 2049 : 1792, ino);
    added.add(`${i % 3 === 0 ? 2049 : 1792}:${ino}`);
  }
  s.add(1792, 2 ** 40 + 5); // big inode numbers (xfs) stay exact
  s.add(1792, 12); // a duplicate (hard link)
  s.add(1792, 12);
  added.add(`1792:${2 ** 40 + 5}`).add('1792:12');
  for (const dev of [1792, 2049, 7]) {
    for (let ino = 0; ino < 100_010; ino += 1) assert.equal(s.has(dev, ino), added.has(`${dev}:${ino}`), `${dev}:${ino}`);
  }
  assert.equal(s.has(1792, 2 ** 40 + 5), true);
  assert.equal(s.has(1792, 2 ** 40 + 4), false);
  assert.throws(() => s.add(1, 1), /add after has/);
});
