import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { policyLexer } from '../../src/dsl/tokens.js';
import { parsePolicy } from '../../src/dsl/index.js';
import { HEAD } from './marks.js';

const kinds = (text: string) => policyLexer.tokenize(text).tokens.map((t) => `${t.tokenType.name}:${t.image}`);

/** The value a single comparison `size|last_access|... OP v` parses to. */
function ruleValue(attr: string, v: string) {
  const r = parsePolicy(`${HEAD}policy p on fs { rule r: ${attr} > ${v} -> keep }`, 'x');
  assert.deepEqual(r.diagnostics, []);
  const c = r.policy!.policies[0]!.rules[0]!.cond;
  assert.equal(c.kind, 'cmp');
  return c.kind === 'cmp' ? c.value : undefined;
}

describe('lexer', () => {
  test('keywords inside longer names stay identifiers', () => {
    assert.deepEqual(kinds('tiering order or orders to total s3x'), [
      'Identifier:tiering',
      'Kw_order:order',
      'Kw_or:or',
      'Identifier:orders',
      'Kw_to:to',
      'Identifier:total',
      'Identifier:s3x',
    ]);
  });

  test('quantities carry their unit; unknown units are one token', () => {
    assert.deepEqual(kinds('4MiB 30d 85% 12 1.5GB 5m 3days -2'), [
      'Size:4MiB',
      'Duration:30d',
      'Percent:85%',
      'Number:12',
      'Size:1.5GB',
      'BadQuantity:5m',
      'BadQuantity:3days',
      'Number:-2',
    ]);
  });

  test('comments and whitespace are skipped; operators are distinct tokens', () => {
    assert.deepEqual(kinds('a == b # == c\n!= !~ ~ <= >= < > = -> : , { } ( ) *'), [
      'Identifier:a',
      'Eq:==',
      'Identifier:b',
      'Ne:!=',
      'NotMatch:!~',
      'Match:~',
      'Le:<=',
      'Ge:>=',
      'Lt:<',
      'Gt:>',
      'SingleEq:=',
      'Arrow:->',
      'Colon::',
      'Comma:,',
      'LCurly:{',
      'RCurly:}',
      'LParen:(',
      'RParen:)',
      'Star:*',
    ]);
  });

  test('strings with escapes; an unterminated string stops at the end of its line', () => {
    assert.deepEqual(kinds('"a\\"b" "open\nx'), ['String:"a\\"b"', 'UnterminatedString:"open', 'Identifier:x']);
  });
});

describe('units', () => {
  const sizes: [string, number][] = [
    ['7B', 7],
    ['2KB', 2000],
    ['3MB', 3_000_000],
    ['4GB', 4e9],
    ['5TB', 5e12],
    ['2KiB', 2048],
    ['3MiB', 3 * 1024 ** 2],
    ['4GiB', 4 * 1024 ** 3],
    ['5TiB', 5 * 1024 ** 4],
    ['1.5KiB', 1536],
  ];
  for (const [text, bytes] of sizes) {
    test(`size ${text} = ${bytes} bytes`, () => assert.deepEqual(ruleValue('size', text), { kind: 'size', bytes, span: ruleValue('size', text)!.span }));
  }
  const durations: [string, number][] = [
    ['9s', 9000],
    ['5min', 300_000],
    ['2h', 7_200_000],
    ['3d', 3 * 86_400_000],
    ['2w', 14 * 86_400_000],
    ['1y', 365 * 86_400_000],
    ['0.5s', 500],
  ];
  for (const [text, ms] of durations) {
    test(`duration ${text} = ${ms} ms`, () => {
      const v = ruleValue('last_access', text)!;
      assert.equal(v.kind, 'duration');
      assert.equal(v.kind === 'duration' && v.ms, ms);
    });
  }
  test('size == 0 needs no unit', () => {
    const r = parsePolicy(`${HEAD}policy p on fs { rule r: size == 0 -> keep }`, 'x');
    assert.deepEqual(r.diagnostics, []);
    const c = r.policy!.policies[0]!.rules[0]!.cond;
    assert.equal(c.kind === 'cmp' && c.value.kind === 'size' && c.value.bytes, 0);
  });
});
