import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { formatDiagnostic, diagnosticToJSON, type Diagnostic } from '../../src/dsl/index.js';

const d = (line: number, col: number, length: number, hint?: string): Diagnostic => ({
  severity: 'error',
  code: 'unknown-tier',
  message: "tier 'glacier' is not defined",
  span: { file: 'a.hsmpolicy', line, col, length },
  ...(hint ? { hint } : {}),
});

describe('formatDiagnostic', () => {
  test('head, source line, carets under the token, help line', () => {
    const src = 'tier a { local "/x" }\n  rule r: true -> release to glacier\n';
    assert.equal(
      formatDiagnostic(d(2, 30, 7, 'defined tiers: a'), src),
      [
        "a.hsmpolicy:2:30: error[unknown-tier]: tier 'glacier' is not defined",
        '2 |   rule r: true -> release to glacier',
        '  |                              ^^^^^^^',
        '  = help: defined tiers: a',
      ].join('\n'),
    );
  });

  test('tabs before the token are kept so the carets line up', () => {
    const out = formatDiagnostic(d(1, 3, 2), '\t\tab\n');
    assert.equal(out.split('\n')[2], '  | \t\t^^');
  });

  test('a position past the end of the line (end of file) gets one caret', () => {
    const out = formatDiagnostic(d(1, 6, 1), 'tier ');
    assert.equal(out.split('\n')[2], '  |      ^');
  });

  test('the gutter widens with the line number; CRLF is not shown', () => {
    const src = Array.from({ length: 120 }, (_, i) => `l${i + 1}`).join('\r\n');
    const out = formatDiagnostic(d(100, 1, 4), src).split('\n');
    assert.deepEqual(out.slice(1), ['100 | l100', '    | ^^^^']);
  });

  test('very long lines are cut', () => {
    const out = formatDiagnostic(d(1, 1, 5), 'x'.repeat(10_000)).split('\n');
    assert.ok(out[1]!.length < 260 && out[1]!.endsWith(' ...'));
  });

  test('without source: the head line only', () => {
    assert.equal(formatDiagnostic(d(3, 4, 1)), "a.hsmpolicy:3:4: error[unknown-tier]: tier 'glacier' is not defined");
  });

  test('JSON form: flat fields, hint only when present', () => {
    assert.deepEqual(diagnosticToJSON(d(3, 4, 7)), {
      file: 'a.hsmpolicy',
      line: 3,
      col: 4,
      length: 7,
      severity: 'error',
      code: 'unknown-tier',
      message: "tier 'glacier' is not defined",
    });
  });
});
