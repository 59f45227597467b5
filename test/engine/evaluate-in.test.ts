// `attr in (...)` / `attr not in (...)` and the written units, from policy text to the
// rule evaluate() picks and the trace explain() gives.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy } from '../../src/dsl/index.js';
import type { PolicyDecl } from '../../src/dsl/ast.js';
import { evaluate, explain } from '../../src/engine/evaluate.js';
import { formatExplanation } from '../../src/cli/format/explain-format.js';
import { explainFile } from '../../src/reports/explain.js';
import { facts, DAY, NOW } from './fixtures.js';

function policy(cond: string): PolicyDecl {
  const text = `tier nas { local "/t" }\nfileset fs { root "/r" }\npolicy p on fs {\n  rule r: ${cond} -> keep\n}\n`;
  const { policy: pf, diagnostics } = parsePolicy(text, 'e.hsmpolicy');
  assert.deepEqual(diagnostics, []);
  return pf!.policies[0]!;
}

const matches = (cond: string, f: ReturnType<typeof facts>) => evaluate(policy(cond), f, NOW)?.name === 'r';

describe('evaluate: in / not in', () => {
  const table: [string, Parameters<typeof facts>, boolean][] = [
    ['owner in ("alice", "bob")', ['x', { owner: 'bob' }], true],
    ['owner in ("alice", "bob")', ['x', { owner: 'carol' }], false],
    ['owner in ("al*")', ['x', { owner: 'alice' }], false], // owner/group compare exactly, as ==
    ['group not in ("staff", "adm")', ['x', { group: 'staff' }], false],
    ['group not in ("staff", "adm")', ['x', { group: 'sci' }], true],
    ['uid in (1000, 1001)', ['x', { uid: 1001 }], true],
    ['uid in (1000, 1001)', ['x', { uid: 1002 }], false],
    ['uid not in (0)', ['x', { uid: 0 }], false],
    ['name in ("*.h5", "*.nc")', ['runs/a.nc', {}], true], // name and path elements are globs
    ['name in ("*.h5", "*.nc")', ['runs/a.txt', {}], false],
    ['path in ("runs/**", "tmp/*")', ['runs/x/y.h5', {}], true],
    ['path in ("tmp/*")', ['tmp/x/y.h5', {}], false],
    ['path not in ("tmp/**")', ['tmp/x/y.h5', {}], false],
    ['state in (archived, released)', ['x', { state: 'released' }], true],
    ['state in (archived, released)', ['x', { state: 'dirty' }], false],
    ['not owner in ("alice")', ['x', { owner: 'alice' }], false],
  ];
  for (const [cond, args, want] of table) {
    test(`${cond} on ${JSON.stringify(args[1])} ${args[0]}: ${want}`, () => assert.equal(matches(cond, facts(...args)), want));
  }

  test('units in words evaluate like their symbols', () => {
    const old = facts('x', { atimeMs: NOW - 31 * DAY, size: 2e9 });
    assert.equal(matches('last_access > 30 days and size > 1 GB', old), true);
    assert.equal(matches('last_access > 5 weeks', old), false);
    assert.equal(matches('last_access < 1 year', old), true);
  });
});

describe('explain: an in-list traces as one comparison with its list', () => {
  test('trace and its rendering', () => {
    const p = policy('owner in ("alice", "bob") and uid not in (0, 1)');
    const ex = explain(p, facts('a/b', { owner: 'bob', uid: 1000 }), NOW);
    assert.equal(ex.decidedBy, 'r');
    assert.deepEqual(
      ex.rules[0]!.conditions.map((c) => [c.attr, c.op, c.expected, c.actual, c.result]),
      [
        ['owner', 'in', ['alice', 'bob'], 'bob', true],
        ['uid', 'not in', [0, 1], 1000, true],
      ],
    );
    const text = `tier nas { local "/t" }\nfileset fs { root "/r" }\npolicy p on fs {\n  rule r: owner in ("alice", "bob") and uid not in (0, 1) -> keep\n}\n`;
    const pf = parsePolicy(text, 'e.hsmpolicy').policy!;
    const lines = formatExplanation(explainFile(pf, facts('a/b', { owner: 'bob', uid: 1000 }), { now: NOW, usage: new Map(), lastRecallAt: null }), NOW);
    assert.ok(lines.includes('      yes  owner in ("alice", "bob")   (owner = "bob")'), lines.join('\n'));
    assert.ok(lines.includes('      yes  uid not in (0, 1)   (uid = 1000)'), lines.join('\n'));
  });
});
