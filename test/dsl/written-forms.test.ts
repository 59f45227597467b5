// The policy language as people write it (issue 16): units with a space or in words,
// `in` lists, one diagnostic per mistake, and the root-relative path hint. Positions are
// exact (⟨ marks where a diagnostic must point).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy, printPolicy } from '../../src/dsl/index.js';
import type { Expr, PolicyFile, Value } from '../../src/dsl/ast.js';
import { HEAD, marked } from './marks.js';

const P = (body: string) => `${HEAD}policy p on fs {\n${body}\n}\n`;
const DAY = 86_400_000;

function ok(text: string): PolicyFile {
  const r = parsePolicy(text, 'w.hsmpolicy');
  assert.deepEqual(r.diagnostics, [], JSON.stringify(r.diagnostics));
  return r.policy!;
}

const cond = (pf: PolicyFile, i = 0): Expr => pf.policies[0]!.rules[i]!.cond;

/** Every diagnostic as `line:col code`, for exact comparisons. */
function diags(text: string): string[] {
  return parsePolicy(text, 'w.hsmpolicy').diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.code}`);
}

/** The snippet gives exactly these diagnostics, at its ⟨ marks in order. */
function only(snippet: string, codes: string[]): ReturnType<typeof parsePolicy>['diagnostics'] {
  const { text, at } = marked(snippet);
  const r = parsePolicy(text, 'w.hsmpolicy');
  assert.deepEqual(
    r.diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.code}`),
    codes.map((c, i) => `${at[i]} ${c}`),
    r.diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.code}: ${d.message} / ${d.hint}`).join('\n'),
  );
  return r.diagnostics;
}

describe('units with a space or in words', () => {
  const value = (attr: string, v: string): Value => {
    const c = cond(ok(P(`  rule r: ${attr} > ${v} -> keep`)));
    assert.equal(c.kind, 'cmp');
    return (c as Extract<Expr, { kind: 'cmp' }>).value;
  };
  const sizes: [string, number][] = [
    ['1 GB', 1e9],
    ['4 MiB', 4 * 1024 ** 2],
    ['1.5\tGiB', 1.5 * 1024 ** 3],
    ['10 B', 10],
  ];
  for (const [text, bytes] of sizes) {
    test(`size ${JSON.stringify(text)} = ${bytes} bytes`, () => {
      const v = value('size', text);
      assert.equal(v.kind === 'size' && v.bytes, bytes);
      assert.equal(v.span.length, text.length, 'the span covers number, space and unit');
    });
  }
  const durations: [string, number][] = [
    ['30 days', 30 * DAY],
    ['1 day', DAY],
    ['30 d', 30 * DAY],
    ['2 weeks', 14 * DAY],
    ['1 week', 7 * DAY],
    ['12 hours', 12 * 3_600_000],
    ['1 hour', 3_600_000],
    ['2 hrs', 2 * 3_600_000],
    ['1 year', 365 * DAY],
    ['2 years', 730 * DAY],
    ['10 minutes', 600_000],
    ['5 min', 300_000],
    ['5 mins', 300_000],
    ['90 seconds', 90_000],
    ['1 sec', 1000],
  ];
  for (const [text, ms] of durations) {
    test(`duration ${JSON.stringify(text)} = ${ms} ms`, () => {
      const v = value('last_access', text);
      assert.equal(v.kind === 'duration' && v.ms, ms);
    });
  }

  test('options take them too: chunk 4 MiB, timeout 30 seconds, cooldown 2 weeks, limit 2 TiB', () => {
    const pf = ok(`tier t { local "/t" chunk 4 MiB timeout 30 seconds }\nfileset fs { root "/d" }\npolicy p on fs {\n  cooldown 2 weeks\n  limit 2 TiB\n  rule r: true -> keep\n}\n`);
    assert.deepEqual([pf.tiers[0]!.tuning.chunk, pf.tiers[0]!.tuning.timeoutMs], [4 * 1024 ** 2, 30_000]);
    assert.deepEqual([pf.policies[0]!.cooldownMs, pf.policies[0]!.limitBytes], [14 * DAY, 2 * 1024 ** 4]);
  });

  test('--print writes the canonical unit: 30 days -> 30d, 1 GB -> 1GB, 1 year -> 1y', () => {
    const out = printPolicy(ok(P('  rule r: size > 1 GB and last_access > 30 days and last_mod < 1 year -> keep')));
    assert.match(out, /rule r: size > 1GB and last_access > 30d and last_mod < 1y -> keep/);
  });

  test('the issue example: no diagnostic at all', () => {
    ok(P('  rule a: size > 1 GB -> release to nas\n  rule b: last_access > 30 days -> release to nas'));
  });

  test('a unit on the next line is not a unit', () => {
    const r = parsePolicy(P('  rule r: size > 1\n    GB -> keep'), 'w');
    assert.ok(r.diagnostics.some((d) => d.severity === 'error'));
  });
});

describe('unit slips: one diagnostic each, at the quantity', () => {
  const cases: [string, string, RegExp][] = [
    ['  rule a: size > ⟨1 gb -> keep', 'unknown-unit', /did you mean 1GB\?/],
    ['  rule a: size > ⟨1 gigs -> keep', 'unknown-unit', /did you mean 1GB\?/],
    ['  rule a: last_access > ⟨2 months -> keep', 'unknown-unit', /no fixed length.*60d or 8w/],
    ['  rule a: last_access > ⟨1 month -> keep', 'unknown-unit', /30d or 4w/],
    ['  rule a: last_access > ⟨3 Days -> keep', 'unknown-unit', /did you mean 3d\?/],
    ['  rule a: last_access > ⟨30 dayz -> keep', 'unknown-unit', /did you mean 30d\?/],
    ['  rule a: last_access > ⟨30days -> keep', 'unknown-unit', /did you mean 30d\?/],
    ['  rule a: last_mod > ⟨5 m -> keep', 'unknown-unit', /did you mean 5min\?/],
    ['  when usage > ⟨85 pct until usage < 70%\n  rule a: true -> keep', 'unknown-unit', /did you mean 85%\?/],
    ['  when usage > 85% until usage < ⟨70 percent\n  rule a: true -> keep', 'unknown-unit', /did you mean 70%\?/],
  ];
  for (const [body, code, hint] of cases) {
    test(body.trim().split('\n')[0]!.replace('⟨', ''), () => {
      const [d] = only(P(body), [code]);
      assert.match(`${d!.message} ${d!.hint}`, hint);
    });
  }

  test('in a tier option: chunk 4 mb is one unknown-unit', () => {
    only(`tier t { local "/t" chunk ⟨4 mb }`, ['unknown-unit']);
  });

  test('in options: any word after a number that has no value of its own is a unit attempt', () => {
    only(`tier t { local "/t" chunk ⟨4 megs }`, ['unknown-unit']);
    only(`tier t { local "/t" timeout ⟨30 secondz concurrency 8 }`, ['unknown-unit']);
    // a misspelt option after a number on the same line stays a misspelt option
    only(`tier t { local "/t" concurrency 8 ⟨chnk 4MiB }`, ['unknown-option']);
  });

  test('the underline covers number and word', () => {
    const [d] = only(P('  rule a: size > ⟨1 gigs -> keep'), ['unknown-unit']);
    assert.equal(d!.span.length, '1 gigs'.length);
  });

  test('a separate mistake in the same rule is still reported: wrong unit and unknown tier', () => {
    only(P('  rule a: size > ⟨1 gigs -> release to ⟨glacier'), ['unknown-unit', 'unknown-tier']);
    only(P('  rule a: size > ⟨2 months -> release to ⟨glacier'), ['unknown-unit', 'unknown-tier']);
  });

  test('a missing arrow before an action is not taken for a unit', () => {
    only(P('  rule a: uid == 5 ⟨keep'), ['syntax']);
  });
});

describe('one mistake, one diagnostic', () => {
  test('after a syntax error in a rule, the rest of that rule is not reported', () => {
    only(P('  rule a: size > 1B ⟨uid == 3 -> release to glacier'), ['syntax']);
    only(P('  rule a: size > 1B ⟨&& uid == 1 -> release to glacier'), ['unexpected-character']);
    only(P('  rule a: name ~ ⟨"abc -> keep'), ['unterminated-string']);
  });

  test('mistakes before the break, and in other rules, are still reported', () => {
    only(
      P('  rule a: size > ⟨30d and (uid == 1 ⟨-> keep\n  rule b: size > 1B ⟨uid == 3 -> keep\n  rule c: true -> release to ⟨glacier'),
      ['type-mismatch', 'syntax', 'syntax', 'unknown-tier'],
    );
  });

  test('a rule that breaks before the next rule: one error, at the next rule', () => {
    only(P('  rule a: size > 1B\n  ⟨rule b: uid == 1 -> keep'), ['syntax']);
  });

  test('the closing brace belongs to the last rule', () => {
    only(`${HEAD}policy p on fs {\n  rule a: size > 1B -> release to\n⟨}\n`, ['syntax']);
  });

  test('a broken rule is still a rule: no extra no-rules', () => {
    assert.deepEqual(diags(P('  rule a: size > 1B uid == 3 -> keep')), ['4:21 syntax']);
  });
});

describe('lists: attr in (...), attr not in (...)', () => {
  test('parse, evaluate-ready AST, print', () => {
    const pf = ok(P('  rule a: owner in ("alice", "bob") and uid not in (0, 1) and name in ("*.h5", "*.nc") and state in (archived, released) -> keep'));
    const out = printPolicy(pf);
    assert.match(out, /rule a: owner in \("alice", "bob"\) and uid not in \(0, 1\) and name in \("\*\.h5", "\*\.nc"\) and state in \(archived, released\) -> keep/);
    const again = parsePolicy(out, 'printed');
    assert.deepEqual(again.diagnostics, []);
    assert.equal(printPolicy(again.policy!), out);
  });

  test('the AST node: attr, negated, values with spans', () => {
    const { text, at } = marked(P('  rule a: ⟨group ⟨not in (⟨"x", ⟨"y") -> keep'));
    const c = cond(ok(text));
    assert.equal(c.kind, 'in');
    if (c.kind !== 'in') return;
    assert.equal(c.attr, 'group');
    assert.equal(c.negated, true);
    assert.deepEqual(c.values.map((v) => v.kind === 'string' && v.value), ['x', 'y']);
    const pos = (s: { line: number; col: number }) => `${s.line}:${s.col}`;
    assert.deepEqual([pos(c.span), pos(c.opSpan), ...c.values.map((v) => pos(v.span))], at);
    assert.equal(c.opSpan.length, 'not in'.length);
    assert.equal(c.span.length, 'group not in ("x", "y")'.length);
  });

  test('not binds outside: not owner in (...) is not (owner in (...))', () => {
    const c = cond(ok(P('  rule a: not owner in ("a") -> keep')));
    assert.equal(c.kind === 'not' && c.operand.kind, 'in');
  });

  const bad: [string, string[]][] = [
    ['  rule a: name in ("*.h5", ⟨3) -> keep', ['type-mismatch']],
    ['  rule a: uid in (1000, ⟨"bob", ⟨-1) -> keep', ['type-mismatch', 'invalid-value']],
    ['  rule a: owner in ("alice", ⟨bob) -> keep', ['type-mismatch']],
    ['  rule a: size ⟨in (1GB) -> keep', ['invalid-operator']],
    ['  rule a: pinned ⟨not in (true) -> keep', ['invalid-operator']],
    ['  rule a: state in (released, ⟨relased) -> keep', ['unknown-state']],
    ['  rule a: name in ("*.h5", ⟨"*.{nc") -> keep', ['invalid-glob']],
    ['  rule a: name in (⟨"raw/*.h5") -> keep', ['never-matches']],
    ['  rule a: ⟨colour in ("red") -> keep', ['unknown-attribute']],
    ['  rule a: owner in (⟨) -> keep', ['syntax']],
    ['  rule a: owner in ("a", "b" ⟨-> keep', ['syntax']],
    ['  rule a: owner in ⟨"a", "b" -> keep', ['syntax']],
    ['  when usage ⟨in (85%) until usage < 70%\n  rule a: true -> keep', ['syntax']],
  ];
  for (const [body, codes] of bad) {
    test(`${codes.join(', ')}: ${body.trim().split('\n')[0]!.replace(/⟨/g, '')}`, () => {
      only(P(body), codes);
    });
  }

  test('messages name the element and what the attribute wants', () => {
    const [d] = only(P('  rule a: uid in (1000, ⟨"bob") -> keep'), ['type-mismatch']);
    assert.match(d!.message, /uid compares with a plain number.*not a string \("bob"\)/);
    assert.match(d!.hint!, /compare names with owner/);
    const [e] = only(P('  rule a: size ⟨in (1GB) -> keep'), ['invalid-operator']);
    assert.match(e!.message, /'in' does not apply to size; use == != < <= > >=/);
  });
});

describe('the absolute-path hint names the pattern relative to the fileset root', () => {
  const hintFor = (roots: string, pattern: string, before = '~ ', after = '') => {
    const { text, at } = marked(`tier nas { local "/t" }\nfileset s { root ${roots} }\npolicy p on s {\n  rule a: path ${before}⟨${JSON.stringify(pattern)}${after} -> keep\n}\n`);
    const r = parsePolicy(text, 'w');
    assert.deepEqual(r.diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.code}`), [`${at[0]} never-matches`]);
    return r.diagnostics[0]!.hint;
  };
  test('root "/scratch": "/scratch/projects/**" -> "projects/**"', () => {
    assert.equal(hintFor('"/scratch"', '/scratch/projects/**'), 'write it relative to the root "/scratch": "projects/**"');
  });
  test('several roots: the one the pattern is under, the longest first', () => {
    assert.equal(hintFor('"/a", "/a/b"', '/a/b/x/*.h5'), 'write it relative to the root "/a/b": "x/*.h5"');
    assert.equal(hintFor('"/a", "/c"', '/c/x/**'), 'write it relative to the root "/c": "x/**"');
  });
  test('a pattern under no root (or under a sibling with the same prefix) keeps the old hint', () => {
    assert.equal(hintFor('"/scratch"', '/srv/x/**'), `drop the leading '/': "srv/x/**"`);
    assert.equal(hintFor('"/scratch"', '/scratch2/x'), `drop the leading '/': "scratch2/x"`);
  });
  test('in a list element too', () => {
    assert.equal(hintFor('"/scratch"', '/scratch/tmp/**', 'in ("a/**", ', ')'), 'write it relative to the root "/scratch": "tmp/**"');
  });
});

describe('GPFS habits', () => {
  test('upper-case AND, OR, NOT, IN: one keyword-case error each, and the rule still parses', () => {
    const [d] = only(P('  rule a: owner ⟨IN ("a", "b") -> keep'), ['keyword-case']);
    assert.equal(d!.message, "keywords are lower case: 'IN' is written 'in'");
    assert.equal(d!.hint, "write 'in'");
    only(P('  rule a: uid == 1 ⟨AND ⟨NOT uid == 2 -> keep'), ['keyword-case', 'keyword-case']);
    // the rule went on parsing: separate mistakes after it are still found
    only(P('  rule a: uid == 1 ⟨OR size > ⟨30d -> release to ⟨glacier'), ['keyword-case', 'type-mismatch', 'unknown-tier']);
    assert.equal(parsePolicy(P('  rule a: uid == 1 OR uid == 2 -> keep'), 'x').policy, null, 'an error: the file is refused');
  });

  test('a glob without quotes: one syntax error with a hint', () => {
    const [d] = only(P('  rule a: name ~ ⟨*.log -> keep'), ['syntax']);
    assert.match(d!.hint!, /write it in quotes/);
    const [e] = only(P('  rule a: name in (⟨*.h5, "*.nc") -> keep'), ['syntax']);
    assert.match(e!.hint!, /write it in quotes/);
  });

  test('names that merely contain them stay names', () => {
    ok(`tier INDEX { local "/t" }\nfileset fs { root "/d" }\npolicy p on fs {\n  rule ANDROID: true -> release to INDEX\n}\n`);
  });
});
