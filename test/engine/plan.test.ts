import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { classify, noDataMessage, planPolicy } from '../../src/engine/plan.js';
import { evaluate } from '../../src/engine/evaluate.js';
import type { PolicyDecl } from '../../src/dsl/ast.js';
import type { FileFacts, FsUsage } from '../../src/engine/facts.js';
import type { StateRecord } from '../../src/record/state-record.js';
import * as F from './fixtures.js';

const { rule, policy, facts, DAY, NOW } = F;
const MiB = 1 << 20;

function run(p: PolicyDecl, files: FileFacts[], usage: FsUsage[] = [{ dev: 1, usedBytes: 0, availBytes: 100 * MiB }]) {
  return planPolicy(p, files.map((file) => ({ file, rule: evaluate(p, file, NOW) })), usage);
}

const rec = (state: StateRecord['state'], tier = 'cold', over: Partial<StateRecord> = {}): StateRecord => ({
  v: 1,
  state,
  pinned: false,
  gen: 1,
  copy: { tier, key: 'k', size: 1000, mtimeNs: '0', sha256: 'x', archivedAt: 0, chunk: 4 << 20 },
  ...over,
});

describe('classify: no-ops are dropped so a second run does no new work', () => {
  const rel = rule('r', F.always, F.release('cold'));
  const arc = rule('a', F.always, F.archive('cold'));
  const cases: [string, Partial<FileFacts>, typeof rel, string][] = [
    ['release resident', {}, rel, 'release'],
    ['release dirty (re-archive first)', { state: 'dirty', record: rec('archived') }, rel, 'release'],
    ['release archived', { state: 'archived', record: rec('archived') }, rel, 'release'],
    ['release partial (copy on this tier, unchanged: re-released)', { state: 'partial', mtimeNs: '0', record: rec('partial') }, rel, 'release'],
    ['release partial touched or written since (mtime differs from the copy)', { state: 'partial', record: rec('partial') }, rel, 'noop'],
    ['release partial with its copy on another tier', { state: 'partial', mtimeNs: '0', record: rec('partial', 'nas') }, rel, 'noop'],
    ['release partial pinned', { state: 'partial', mtimeNs: '0', pinned: true, record: rec('partial', 'cold', { pinned: true }) }, rel, 'pinned'],
    ['release released', { state: 'released', record: rec('released') }, rel, 'noop'],
    ['release pinned', { pinned: true }, rel, 'pinned'],
    // A sparse claim: nothing allocated, nothing to free (issue 18).
    ['release a file with no allocated data', { size: 20 * 2 ** 30, blocks: 0 }, rel, 'nodata'],
    ['release an empty file (nothing claimed)', { size: 0, blocks: 0 }, rel, 'release'],
    ['release an archived file with no data', { state: 'archived', record: rec('archived'), blocks: 0 }, rel, 'nodata'],
    ['release a file whose data is tiny next to its size', { size: 20 * 2 ** 30, blocks: 8 }, rel, 'release'],
    ['archive a file with no allocated data (nothing to upload but its map)', { size: 20 * 2 ** 30, blocks: 0 }, arc, 'archive'],
    ['archive resident', {}, arc, 'archive'],
    ['archive archived same tier', { state: 'archived', record: rec('archived') }, arc, 'noop'],
    ['archive archived other tier', { state: 'archived', record: rec('archived', 'nas') }, arc, 'archive'],
    ['archive dirty', { state: 'dirty', record: rec('archived') }, arc, 'archive'],
    ['archive released', { state: 'released', record: rec('released') }, arc, 'noop'],
    ['pin unpinned', {}, rule('p', F.always, F.pin), 'pin'],
    ['pin pinned', { pinned: true }, rule('p', F.always, F.pin), 'noop'],
    ['unpin unpinned', {}, rule('u', F.always, F.unpin), 'noop'],
    ['recall released', { state: 'released', record: rec('released') }, rule('c', F.always, F.recall), 'recall'],
    ['recall resident', {}, rule('c', F.always, F.recall), 'noop'],
    // Written past its end after release: 'dirty' by size, but its record still has holes.
    ['recall released written since (derived dirty)', { state: 'dirty', record: rec('released') }, rule('c', F.always, F.recall), 'recall'],
    ['recall partial written since (derived dirty)', { state: 'dirty', record: rec('partial') }, rule('c', F.always, F.recall), 'recall'],
    ['recall dirty archived file', { state: 'dirty', record: rec('archived') }, rule('c', F.always, F.recall), 'noop'],
    ['keep', {}, rule('k', F.always, F.keep), 'keep'],
  ];
  for (const [name, over, r, want] of cases) {
    test(name, () => {
      const c = classify(facts('f', over), r, 'p');
      assert.equal(typeof c === 'string' ? c : c.kind, want);
    });
  }
  test('unmatched', () => assert.equal(classify(facts('f'), null, 'p'), 'unmatched'));
  test('an action keeps the rule name and span', () => {
    const c = classify(facts('f'), rule('r', F.always, F.release('cold'), 7), 'pol');
    assert.ok(typeof c !== 'string');
    assert.deepEqual(c.reason, { policy: 'pol', rule: 'r', span: F.sp(7) });
    assert.equal(c.tier, 'cold');
  });
});

test('no-data releases are counted and listed with their rule, never planned', () => {
  const p = policy([rule('r', F.always, F.release('cold'), 4)]);
  const plan = run(p, [facts('bomb', { size: 2 ** 44, blocks: 0 }), facts('real', { size: MiB })]);
  assert.deepEqual(plan.actions.map((a) => a.file.path), ['real']);
  assert.equal(plan.skipped.nodata, 1);
  assert.deepEqual(plan.noData.map((a) => [a.file.path, a.kind, a.tier, a.reason.rule, a.freed]), [['bomb', 'release', 'cold', 'r', 0]]);
  assert.match(noDataMessage(plan.noData[0]!.file), /holds no data: 17592186044416 bytes claimed, no block allocated/);
});

describe('order and limits', () => {
  const files = [
    facts('a', { size: 3 * MiB, atimeMs: NOW - 3 * DAY }),
    facts('b', { size: 1 * MiB, atimeMs: NOW - 9 * DAY }),
    facts('c', { size: 2 * MiB, atimeMs: NOW - 5 * DAY }),
  ];
  const rel = [rule('r', F.always, F.release('cold'))];
  const ob = (key: 'last_access' | 'size', dir: 'asc' | 'desc') => ({ orderBy: { key, dir, span: F.sp() } });
  const names = (p: PolicyDecl) => run(p, files).actions.map((a) => a.file.path);

  test('order by last_access asc: least recently accessed first', () => {
    assert.deepEqual(names(policy(rel, ob('last_access', 'asc'))), ['b', 'c', 'a']);
  });
  test('order by size desc', () => {
    assert.deepEqual(names(policy(rel, ob('size', 'desc'))), ['a', 'c', 'b']);
  });
  test('limit N files keeps the first N in order', () => {
    const plan = run(policy(rel, { ...ob('size', 'asc'), limitFiles: 2 }), files);
    assert.deepEqual(plan.actions.map((a) => a.file.path), ['b', 'c']);
    assert.equal(plan.skipped.limit, 1);
  });
  test('limit SIZE caps the bytes moved', () => {
    assert.deepEqual(names(policy(rel, { ...ob('size', 'asc'), limitBytes: 3 * MiB })), ['b', 'c']);
    assert.deepEqual(names(policy(rel, { ...ob('size', 'asc'), limitBytes: 3 * MiB - 1 })), ['b']);
  });
});

describe('watermarks', () => {
  const wm = { watermark: { high: 80, low: 60, span: F.sp() } };
  // 10 files of 1 MiB on a 10 MiB filesystem that is 90% full.
  const files = Array.from({ length: 10 }, (_, i) => facts(`f${i}`, { size: MiB, blocks: MiB / 512, atimeMs: NOW - (i + 1) * DAY }));
  const rel = [rule('r', F.always, F.release('cold'))];
  const usage = (usedMiB: number): FsUsage[] => [{ dev: 1, usedBytes: usedMiB * MiB, availBytes: (10 - usedMiB) * MiB }];

  test('above H: releases the oldest first and stops once projected usage is below L', () => {
    const plan = run(policy(rel, wm), files, usage(9));
    // 90% -> 80 -> 70 -> 60 (not yet < 60) -> 50: four releases.
    assert.deepEqual(plan.actions.map((a) => a.file.path), ['f9', 'f8', 'f7', 'f6']);
    assert.equal(plan.watermarks[0]!.triggered, true);
    assert.equal(plan.watermarks[0]!.before, 90);
    assert.equal(plan.watermarks[0]!.projected, 50);
    assert.equal(plan.skipped.watermark, 6);
  });
  test('at or below H: nothing to do', () => {
    const plan = run(policy(rel, wm), files, usage(8));
    assert.equal(plan.actions.length, 0);
    assert.equal(plan.watermarks[0]!.triggered, false);
    assert.equal(plan.skipped.watermark, 10);
  });
  test('archives free nothing, so they do not move the projection', () => {
    const plan = run(policy([rule('a', F.always, F.archive('cold'))], wm), files, usage(9));
    assert.equal(plan.actions.length, 10);
    assert.equal(plan.watermarks[0]!.projected, 90);
  });
  test('a released file frees nothing twice: no-ops are skipped before the projection', () => {
    const withReleased = files.map((f, i) => (i >= 8 ? { ...f, state: 'released' as const, blocks: 0 } : f));
    const plan = run(policy(rel, wm), withReleased, usage(9));
    assert.deepEqual(plan.actions.map((a) => a.file.path), ['f7', 'f6', 'f5', 'f4']);
  });
  test('files on another filesystem follow that filesystem’s usage', () => {
    const other = facts('o', { dev: 2, size: MiB, blocks: MiB / 512 });
    const plan = run(policy(rel, wm), [other, ...files], [...usage(9), { dev: 2, usedBytes: 1, availBytes: 99 }]);
    assert.ok(!plan.actions.some((a) => a.file.path === 'o'));
  });
});
