import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, explain } from '../../src/engine/evaluate.js';
import * as F from './fixtures.js';
import type { Expr } from '../../src/dsl/ast.js';

const { cmp, size, dur, str, ident, num, and, or, not, rule, policy, facts, DAY, NOW } = F;

describe('evaluate: first matching rule decides', () => {
  const p = policy([
    rule('tiny', cmp('size', '<', size(64 * 1024)), F.keep),
    rule('current', cmp('path', '~', str('projects/current/**')), F.pin),
    rule('video', and(cmp('name', '~', str('*.mkv')), cmp('last_access', '>', dur(30 * DAY))), F.release('cold')),
    rule(
      'stale',
      and(cmp('last_mod', '>', dur(90 * DAY)), or(cmp('size', '>=', size(1 << 20)), cmp('owner', '==', str('archive')))),
      F.archive('nas'),
    ),
  ]);
  const big = 10 << 20;
  const cases: [string, Parameters<typeof facts>[1], string | null][] = [
    ['a/small.mkv', { size: 100 }, 'tiny'],
    ['projects/current/x.mkv', { size: big, atimeMs: NOW - 100 * DAY }, 'current'],
    ['m/old.mkv', { size: big, atimeMs: NOW - 31 * DAY }, 'video'],
    ['m/new.mkv', { size: big, atimeMs: NOW - 29 * DAY }, null],
    ['m/.hidden.mkv', { size: big, atimeMs: NOW - 31 * DAY }, 'video'],
    ['d/data.bin', { size: big, mtimeMs: NOW - 91 * DAY }, 'stale'],
    ['d/arch.bin', { size: 100_000, mtimeMs: NOW - 91 * DAY, owner: 'archive' }, 'stale'],
    ['d/bob.bin', { size: 100_000, mtimeMs: NOW - 91 * DAY, owner: 'bob' }, null],
  ];
  for (const [path, over, want] of cases) {
    test(`${path} -> ${want}`, () => {
      assert.equal(evaluate(p, facts(path, over), NOW)?.name ?? null, want);
    });
  }
});

describe('evaluate: attributes and operators', () => {
  const f = facts('dir/sub/file name.txt', { uid: 42, gid: 7, group: 'sci', state: 'archived', pinned: true, size: 4096 });
  const table: [string, Expr, boolean][] = [
    ['state == archived', cmp('state', '==', ident('archived')), true],
    ['state != released', cmp('state', '!=', ident('released')), true],
    ['pinned == true', cmp('pinned', '==', ident('true')), true],
    ['pinned == false (bool)', cmp('pinned', '==', { kind: 'bool', value: false, span: F.sp() }), false],
    ['uid == 42', cmp('uid', '==', num(42)), true],
    ['gid > 7', cmp('gid', '>', num(7)), false],
    ['group ~ s*', cmp('group', '~', str('s*')), true],
    ['name !~ *.txt', cmp('name', '!~', str('*.txt')), false],
    ['path ~ dir/** matches nested', cmp('path', '~', str('dir/**')), true],
    ['path ~ *.txt does not cross /', cmp('path', '~', str('*.txt')), false],
    ['path ~ **/*.txt', cmp('path', '~', str('**/*.txt')), true],
    ['size <= 4KiB', cmp('size', '<=', size(4096)), true],
    ['size > 4KiB', cmp('size', '>', size(4096)), false],
    ['last_change >= 1d', cmp('last_change', '>=', dur(DAY)), true],
    ['not (size > 1)', not(cmp('size', '>', size(1))), false],
  ];
  for (const [name, expr, want] of table) {
    test(name, () => {
      assert.equal(evaluate(policy([rule('r', expr, F.keep)]), f, NOW)?.name === 'r', want);
    });
  }
});

test('explain reports every comparison with its value and the deciding rule', () => {
  const p = policy([
    rule('a', and(cmp('size', '>', size(10)), cmp('name', '~', str('*.iso'))), F.keep),
    rule('b', cmp('last_access', '>', dur(DAY / 2)), F.release('cold')),
    rule('c', F.always, F.archive('nas')),
  ]);
  const e = explain(p, facts('x/y.bin', { size: 50 }), NOW);
  assert.equal(e.decidedBy, 'b');
  assert.deepEqual(
    e.rules.map((r) => [r.rule, r.matched]),
    [
      ['a', false],
      ['b', true],
      ['c', true],
    ],
  );
  assert.deepEqual(
    e.rules[0]!.conditions.map((c) => [c.attr, c.actual, c.expected, c.result]),
    [
      ['size', 50, 10, true],
      ['name', 'y.bin', '*.iso', false],
    ],
  );
  assert.equal(e.rules[1]!.conditions[0]!.actual, DAY);
});
