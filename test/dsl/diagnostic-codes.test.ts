// Every diagnostic code, each at its exact line:col (marked with ⟨ in the snippet).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy, MAX_NESTING, MAX_POLICY_CHARS } from '../../src/dsl/index.js';
import { HEAD, marked } from './marks.js';

const P = (body: string) => `${HEAD}policy p on fs {\n${body}\n}\n`;

// [code, severity, snippet with ⟨ marks, optional message fragment]
const CASES: [string, 'error' | 'warning', string, string?][] = [
  ['syntax', 'error', `${HEAD}⟨bogus here\n`, "unexpected 'bogus'"],
  ['syntax', 'error', P('  rule a ⟨size > 1B -> keep'), "expected ':'"],
  ['syntax', 'error', P('  rule a: size > 1B ⟨keep'), "expected '->'"],
  ['syntax', 'error', P('  rule a: ⟨-> keep'), 'expected a condition'],
  ['unexpected-character', 'error', P('  rule a: size > 1B ⟨&& uid == 1 -> keep')],
  ['unterminated-string', 'error', `tier t { local ⟨"/x }\n`],
  ['unknown-unit', 'error', P('  rule a: last_mod > ⟨5m -> keep'), 'did you mean 5min'],
  ['nesting-too-deep', 'error', P(`  rule a: ${'('.repeat(MAX_NESTING)}⟨(uid == 1${')'.repeat(MAX_NESTING + 1)} -> keep`)],
  ['nesting-too-deep', 'error', P(`  rule a: ⟨${'not '.repeat(65)}uid == 1 -> keep`)],
  ['unknown-option', 'error', `tier t { local "/x" ⟨chunks 4MiB }`, "did you mean 'chunk'"],
  ['unknown-option', 'error', `fileset f { root "/x" ⟨chunk 4MiB }`, "'chunk' is not a fileset option"],
  ['unknown-option', 'error', `tier t { local "/x" ⟨rule a: true -> keep }`, 'belongs in a policy'],
  ['duplicate-option', 'error', `tier t { local "/x" chunk 1MiB ⟨chunk 2MiB }`],
  ['duplicate-option', 'error', P('  order by size\n  ⟨order by last_mod\n  rule a: true -> keep')],
  ['duplicate-option', 'error', P('  limit 1 files\n  ⟨limit 2 files\n  rule a: true -> keep')],
  ['duplicate-option', 'error', `recall { whole_file_for "cp" }\n⟨recall { whole_file_for "mv" }`],
  ['missing-value', 'error', `tier t { local "/x" ⟨chunk }`],
  ['invalid-value', 'error', `tier t { s3 bucket "b" checksum ⟨always }`],
  ['invalid-value', 'error', `tier t { local "/x" concurrency ⟨2.5 }`, 'whole number'],
  ['invalid-value', 'error', `tier t { s3 bucket "b" endpoint ⟨"127.0.0.1:7480" }`],
  ['invalid-value', 'error', P('  order by ⟨age\n  rule a: true -> keep')],
  ['invalid-value', 'error', P('  order by size ⟨upwards\n  rule a: true -> keep')],
  ['invalid-value', 'error', `tier t { local "/x" "/y" }`.replace('"/y"', '⟨"/y"').replace('local "/x" ⟨"/y"', 'local "/x", ⟨"/y"'), 'takes one value'],
  ['type-mismatch', 'error', P('  rule a: size > ⟨30d -> keep'), 'size compares with a size'],
  ['type-mismatch', 'error', P('  rule a: last_access > ⟨5MiB -> keep')],
  ['type-mismatch', 'error', P('  rule a: owner == ⟨3 -> keep'), 'uid'],
  ['type-mismatch', 'error', P('  rule a: owner == ⟨root -> keep'), 'quotes'],
  ['type-mismatch', 'error', P('  rule a: uid == ⟨"root" -> keep')],
  ['type-mismatch', 'error', P('  rule a: pinned == ⟨"yes" -> keep')],
  ['type-mismatch', 'error', `tier t { local "/x" chunk ⟨30s }`],
  ['type-mismatch', 'error', P('  when usage > ⟨5GiB until usage < 70%\n  rule a: true -> keep')],
  ['missing-unit', 'error', P('  rule a: size < ⟨64 -> keep')],
  ['missing-unit', 'error', P('  rule a: last_mod > ⟨30 -> keep')],
  ['missing-unit', 'error', P('  limit ⟨500\n  rule a: true -> keep')],
  ['missing-unit', 'error', `tier t { local "/x" timeout ⟨30 }`],
  ['missing-unit', 'error', P('  when usage > ⟨85 until usage < 70%\n  rule a: true -> keep')],
  ['non-positive', 'error', P('  limit ⟨0 files\n  rule a: true -> keep')],
  ['non-positive', 'error', P('  limit ⟨-5 files\n  rule a: true -> keep')],
  ['non-positive', 'error', P('  limit ⟨0B\n  rule a: true -> keep')],
  ['non-positive', 'error', `tier t { local "/x" concurrency ⟨0 }`],
  ['non-positive', 'error', `tier t {\n  local "/x"\n  bwlimit ⟨0B\n}`, "'bwlimit' must be greater than zero"],
  ['non-positive', 'error', `tier t { s3 bucket "b"  tpslimit ⟨-3 }`, "'tpslimit' must be greater than zero"],
  ['missing-unit', 'error', `tier t { local "/x" bwlimit ⟨50 }`, 'needs a unit'],
  ['invalid-value', 'error', `tier t { local "/x" tpslimit ⟨2.5 }`, 'whole number'],
  ['type-mismatch', 'error', `tier t { local "/x" bwlimit ⟨5s }`],
  ['unknown-action', 'error', P('  rule a: true -> ⟨delete'), 'actions are keep'],
  ['missing-tier', 'error', P('  rule a: true -> ⟨archive')],
  ['unexpected-tier', 'error', P('  rule a: true -> keep to ⟨nas')],
  ['missing-tier-kind', 'error', `tier ⟨t { chunk 1MiB }`],
  ['conflicting-tier-kind', 'error', `tier t { local "/x" ⟨s3 bucket "b" }`],
  ['missing-bucket', 'error', `tier ⟨t { s3 prefix "p/" }`],
  ['not-applicable', 'error', `tier t { local "/x" ⟨bucket "b" }`],
  ['not-applicable', 'error', `tier t { http "http://h/" ⟨prefix "p/" }`],
  ['invalid-value', 'error', `tier t { http ⟨"ftp://h/" }`],
  ['read-only-tier', 'error', `tier web { http "http://h/pub/" }\n${P('  rule a: true -> release to ⟨web')}`],
  ['missing-root', 'error', `fileset ⟨f { include "**" }`],
  ['relative-root', 'error', `fileset f { root ⟨"srv/media" }`],
  ['relative-root', 'error', `fileset f { root ⟨"/srv/../etc" }`],
  ['relative-root', 'error', `tier t { local ⟨"tier" }`],
  ['invalid-glob', 'error', `fileset f { root "/x" exclude ⟨"**/[ab" }`],
  ['invalid-glob', 'error', P('  rule a: name ~ ⟨"*.{mkv,mov" -> keep')],
  ['invalid-glob', 'error', P('  rule a: path !~ ⟨"a/b}" -> keep')],
  ['missing-fileset', 'error', `policy ⟨p { rule a: true -> keep }`],
  ['missing-until', 'error', P('  ⟨when usage > 85%\n  rule a: true -> keep')],
  ['invalid-watermark', 'error', P('  when usage > 80% until usage < ⟨90%\n  rule a: true -> keep'), 'must be below'],
  ['invalid-watermark', 'error', P('  when usage > ⟨120% until usage < 90%\n  rule a: true -> keep'), 'outside 0-100%'],
  ['invalid-watermark', 'error', P('  when ⟨size > 85% until usage < 70%\n  rule a: true -> keep')],
  ['invalid-watermark', 'error', P('  when usage ⟨< 85% until usage < 70%\n  rule a: true -> keep')],
  ['invalid-cron', 'error', P('  schedule ⟨"61 * * * *"\n  rule a: true -> keep'), 'expected range 0-59'],
  ['invalid-cron', 'error', P('  schedule ⟨"* * *"\n  rule a: true -> keep'), 'expected 5 or 6 fields, got 3'],
  ['invalid-timezone', 'error', P('  timezone ⟨"Mars/Olympus"\n  rule a: true -> keep')],
  ['unknown-tier', 'error', P('  rule a: true -> release to ⟨glacier'), 'defined tiers: nas'],
  ['unknown-fileset', 'error', `policy p on ⟨media { rule a: true -> keep }`],
  ['duplicate-name', 'error', `tier t { local "/x" }\ntier ⟨t { local "/y" }`],
  ['duplicate-name', 'error', `fileset f { root "/x" }\nfileset ⟨f { root "/y" }`],
  ['duplicate-name', 'error', `${HEAD}policy p on fs { rule a: true -> keep }\npolicy ⟨p on fs { rule a: true -> keep }`],
  ['duplicate-name', 'error', P('  rule a: uid == 1 -> keep\n  ⟨rule a: uid == 2 -> keep')],
  ['no-rules', 'error', `${HEAD}policy ⟨p on fs { schedule "0 2 * * *" }`],
  ['unreachable-rule', 'warning', P('  rule a: * -> keep\n  ⟨rule b: uid == 1 -> pin'), "rule 'a' (line 4)"],
  ['unknown-attribute', 'error', P('  rule a: ⟨colour == "red" -> keep'), 'attributes are size'],
  ['unknown-attribute', 'error', P('  rule a: ⟨sise > 1B -> keep'), "did you mean 'size'"],
  ['unknown-attribute', 'error', P('  rule a: ⟨usage > 1% -> keep'), 'only for watermarks'],
  ['unknown-state', 'error', P('  rule a: state == ⟨relased -> keep'), "did you mean 'released'"],
  ['invalid-operator', 'error', P('  rule a: size ⟨= 1KiB -> keep'), "use '=='"],
  ['invalid-operator', 'error', P('  rule a: path ⟨< "a" -> keep')],
  ['invalid-operator', 'error', P('  rule a: size ⟨~ "1*" -> keep')],
  ['invalid-value', 'error', P('  rule a: size > ⟨-1KiB -> keep'), 'negative'],
  ['invalid-value', 'error', P('  rule a: uid == ⟨-1 -> keep'), 'whole number'],
  ['never-matches', 'warning', P('  rule a: path ~ ⟨"/srv/media/**" -> keep'), 'drop the leading'],
  ['never-matches', 'warning', P('  rule a: name ~ ⟨"raw/*.h5" -> keep'), 'use path ~'],
  ['empty-file', 'warning', '⟨# nothing but a comment\n'],
];

describe('diagnostic codes at exact positions', () => {
  for (const [code, severity, snippet, fragment] of CASES) {
    const { text, at } = marked(snippet);
    const shown = (snippet.split('\n').find((l) => l.includes('⟨')) ?? '').replace('⟨', '').trim().slice(0, 60);
    test(`${code} at ${at[0]}: ${shown}`, () => {
      const { diagnostics } = parsePolicy(text, 'p.hsmpolicy');
      const hit = diagnostics.find((d) => d.code === code && `${d.span.line}:${d.span.col}` === at[0]);
      assert.ok(hit, `no ${code} at ${at[0]}; got:\n${diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.severity}[${d.code}] ${d.message}`).join('\n')}`);
      assert.equal(hit.severity, severity);
      assert.equal(hit.span.file, 'p.hsmpolicy');
      if (fragment) assert.ok(`${hit.message} ${hit.hint ?? ''}`.includes(fragment), `${hit.message} / ${hit.hint}`);
    });
  }

  test('file-too-large: refused at 1:1 without parsing', () => {
    const r = parsePolicy(' '.repeat(MAX_POLICY_CHARS + 1), 'big');
    assert.equal(r.policy, null);
    assert.deepEqual(r.diagnostics.map((d) => [d.code, d.span.line, d.span.col]), [['file-too-large', 1, 1]]);
  });

  test('internal-error: a failure inside the checker becomes a diagnostic, not an exception', () => {
    // Fault injection: a caller bug (no text at all) makes the lexer fail internally.
    const r = parsePolicy(undefined as unknown as string, 'broken');
    assert.equal(r.policy, null);
    assert.deepEqual(r.diagnostics.map((d) => [d.code, d.severity, d.span.line, d.span.col]), [['internal-error', 'error', 1, 1]]);
    assert.match(r.diagnostics[0]!.message, /^internal error while checking the policy: /);
  });

  test('too-many-errors: diagnostics are capped with a summary', () => {
    const r = parsePolicy(Array.from({ length: 300 }, () => '@').join('\n'), 'junk');
    assert.equal(r.diagnostics.length, 101);
    const last = r.diagnostics[100]!;
    assert.equal(last.code, 'too-many-errors');
    assert.match(last.message, /^200 more problems not shown$/);
    assert.deepEqual([r.diagnostics[0]!.code, r.diagnostics[0]!.span.line, r.diagnostics[0]!.span.col], ['unexpected-character', 1, 1]);
  });

  test('several errors in one run: syntax errors do not hide later ones', () => {
    const { text } = marked(P('  rule a size > 1B -> keep\n  rule b: size > 30d -> keep\n  rule c: true -> release to nope'));
    const r = parsePolicy(text, 'x');
    assert.equal(r.policy, null);
    assert.deepEqual(
      r.diagnostics.map((d) => `${d.span.line}:${d.span.col}:${d.code}`),
      ['4:10:syntax', '5:18:type-mismatch', '6:30:unknown-tier'],
    );
  });

  test('recovery: an error in one rule does not hide the next rules, a missing } costs one error', () => {
    const text = [
      'tier nas { local "/a"',
      'fileset fs { root "/d" }',
      'policy p on fs {',
      '  rule a: size > 1MiB and -> keep',
      '  rule b: size > 1MiB -> release nas',
      '  rule c: (size > 1MiB -> keep',
      '  rule d: size > 30d -> keep',
      '}',
      'stray tokens here',
      'policy q on nowhere { rule e: true -> keep }',
    ].join('\n');
    const r = parsePolicy(text, 'x');
    assert.deepEqual(
      r.diagnostics.map((d) => `${d.span.line}:${d.span.col}:${d.code}: ${d.message}`),
      [
        "1:22:syntax: expected an option, a rule or '}' but found 'fileset'",
        '4:27:syntax: expected a condition (e.g. size > 1MiB, name ~ "*.log", or true) but found \'->\'',
        "5:34:syntax: expected 'to' before 'nas'",
        "6:24:syntax: expected ')' but found '->'",
        '7:18:type-mismatch: size compares with a size such as 64KiB, not a duration (30d)',
        "9:1:syntax: unexpected 'stray'; expected 'tier', 'fileset', 'policy' or 'recall'",
        "10:13:unknown-fileset: fileset 'nowhere' is not defined",
      ],
    );
  });

  test('a broken tier or fileset is reported once, not again where it is used', () => {
    const r = parsePolicy('tier nas { s3 prefix "x/" }\nfileset fs { }\npolicy p on fs { rule a: true -> release to nas }', 'x');
    assert.deepEqual(r.diagnostics.map((d) => `${d.span.line}:${d.span.col}:${d.code}`), ['1:6:missing-bucket', '2:9:missing-root']);
  });

  test('semantic errors keep the AST; syntax errors drop it', () => {
    assert.notEqual(parsePolicy(P('  rule a: size > 30d -> keep'), 'x').policy, null);
    assert.equal(parsePolicy(P('  rule a size > 1B -> keep'), 'x').policy, null);
  });
});
