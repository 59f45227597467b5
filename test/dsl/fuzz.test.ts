// The parser never throws and always answers with well-formed diagnostics, over thousands
// of generated, mutated and random inputs (seeded, so every run sees the same inputs).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { formatDiagnostic, hasErrors, parsePolicy, printPolicy, diagnosticToJSON } from '../../src/dsl/index.js';
import { int, mutate, pick, prng, quantities, randomBytes, validPolicy } from './gen.js';

/** What must hold for every input whatsoever. */
function checkWellFormed(text: string, label: string): ReturnType<typeof parsePolicy> {
  let r: ReturnType<typeof parsePolicy>;
  try {
    r = parsePolicy(text, 'f.hsmpolicy');
  } catch (e) {
    assert.fail(`parsePolicy threw on ${label}: ${(e as Error).stack}\ninput: ${JSON.stringify(text.slice(0, 500))}`);
  }
  for (const d of r.diagnostics) {
    const where = `${label}: ${JSON.stringify(d)} for ${JSON.stringify(text.slice(0, 300))}`;
    assert.notEqual(d.code, 'internal-error', where);
    assert.match(d.code, /^[a-z]+(-[a-z]+)*$/, where);
    assert.ok(d.severity === 'error' || d.severity === 'warning', where);
    assert.ok(Number.isInteger(d.span.line) && d.span.line >= 1, where);
    assert.ok(Number.isInteger(d.span.col) && d.span.col >= 1, where);
    assert.ok(Number.isInteger(d.span.length) && d.span.length >= 1, where);
    assert.ok(d.message.length > 0 && !d.message.includes('undefined') && !d.message.includes('NaN'), where);
    const shown = formatDiagnostic(d, text);
    assert.ok(shown.startsWith(`f.hsmpolicy:${d.span.line}:${d.span.col}: ${d.severity}[${d.code}]: `), where);
    JSON.stringify(diagnosticToJSON(d));
  }
  if (r.policy === null) assert.ok(hasErrors(r.diagnostics), `${label}: null policy without an error`);
  if (r.policy && !hasErrors(r.diagnostics)) {
    // A clean parse prints to text that parses clean again, to the same text.
    const once = printPolicy(r.policy);
    const again = parsePolicy(once, 'printed');
    assert.deepEqual(again.diagnostics.filter((d) => d.severity === 'error'), [], `${label}: printed form has errors:\n${once}`);
    assert.equal(printPolicy(again.policy!), once, label);
  }
  return r;
}

const fixtures = readdirSync(new URL('../../policies/', import.meta.url))
  .filter((f) => f.endsWith('.hsmpolicy'))
  .map((f) => readFileSync(new URL(`../../policies/${f}`, import.meta.url), 'utf8'));

describe('fuzz: parsePolicy never throws', () => {
  test('1000 generated policies are valid and print to a fixed point', () => {
    const r = prng(1);
    for (let i = 0; i < 1000; i++) {
      const text = validPolicy(r);
      const res = checkWellFormed(text, `generated #${i}`);
      assert.deepEqual(res.diagnostics.filter((d) => d.severity === 'error'), [], `generated #${i}:\n${text}`);
    }
  });

  test('3000 mutated fixtures and generated policies', () => {
    const r = prng(2);
    let withErrors = 0;
    for (let i = 0; i < 3000; i++) {
      let text = r() < 0.5 ? pick(r, fixtures) : validPolicy(r);
      for (let m = 1 + int(r, 8); m > 0; m--) text = mutate(r, text);
      if (hasErrors(checkWellFormed(text, `mutant #${i}`).diagnostics)) withErrors++;
    }
    // The mutations must actually break things, or this test proves little.
    assert.ok(withErrors > 1500, `only ${withErrors} mutants had errors`);
  });

  test('one unit slip in a valid policy (rule or option) gives exactly one error, at the slip', () => {
    const r = prng(4);
    const slips = [' gigs', ' gb', ' months', 'm', ' dayz', ' Days', 'kb', ' fortnights'];
    let tried = 0;
    for (let i = 0; tried < 500 && i < 5000; i++) {
      const text = validPolicy(r);
      const qs = quantities(text);
      if (qs.length === 0) continue;
      tried++;
      const q = pick(r, qs);
      const slipped = text.slice(0, q.at) + q.number + pick(r, slips) + text.slice(q.at + q.len);
      const res = checkWellFormed(slipped, `slip #${i}`);
      const errors = res.diagnostics.filter((d) => d.severity === 'error');
      const line = slipped.slice(0, q.at).split('\n').length;
      const col = q.at - slipped.lastIndexOf('\n', q.at - 1);
      assert.deepEqual(
        errors.map((d) => `${d.span.line}:${d.span.col} ${d.code}`),
        [`${line}:${col} unknown-unit`],
        `slip #${i}:\n${slipped.split('\n')[line - 1]}\n${res.diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.code} ${d.message}`).join('\n')}`,
      );
    }
    assert.equal(tried, 500);
  });

  test('1000 random byte strings', () => {
    const r = prng(3);
    for (let i = 0; i < 1000; i++) {
      const text = randomBytes(r, int(r, 400));
      checkWellFormed(text, `random #${i}`);
    }
  });

  test('pathological shapes', () => {
    const head = 'tier t { local "/t" }\nfileset f { root "/d" }\n';
    const rule = (cond: string) => `${head}policy p on f { rule a: ${cond} -> keep }`;
    const cases: [string, string, string | undefined][] = [
      ['10k nested parentheses', rule('('.repeat(10_000) + 'uid == 1' + ')'.repeat(10_000)), 'nesting-too-deep'],
      ['10k unbalanced open parentheses', rule('('.repeat(10_000)), 'nesting-too-deep'],
      ['10k closing parentheses', rule(')'.repeat(10_000)), 'syntax'],
      ['10k not', rule('not '.repeat(10_000) + 'uid == 1'), 'nesting-too-deep'],
      ['unterminated string at end of file', `${head}policy p on f { rule a: name ~ "abc`, 'unterminated-string'],
      ['only a quote', '"', 'unterminated-string'],
      ['NUL bytes', '\u0000'.repeat(1000), 'unexpected-character'],
      ['one 200k-character line', 'x'.repeat(200_000), 'syntax'],
      ['CRLF line endings', `tier t { local "/t" }\r\nfileset f { root "/d" }\r\npolicy p on f {\r\n  rule a: size > 1B -> keep\r\n}\r\n`, undefined],
      ['30k rules', `${head}policy p on f {\n${Array.from({ length: 30_000 }, (_, i) => `  rule r${i}: uid == ${i} -> keep`).join('\n')}\n}`, undefined],
      ['10k errors', Array.from({ length: 10_000 }, () => 'tier { }').join('\n'), 'too-many-errors'],
      ['empty', '', 'empty-file'],
    ];
    for (const [label, text, code] of cases) {
      const res = checkWellFormed(text, label);
      if (code) assert.ok(res.diagnostics.some((d) => d.code === code), `${label}: ${res.diagnostics.slice(0, 5).map((d) => d.code)}`);
      else assert.deepEqual(res.diagnostics, [], label);
    }
  });
});
