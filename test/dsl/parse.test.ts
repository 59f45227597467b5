import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { parsePolicy, printPolicy } from '../../src/dsl/index.js';
import { printExpr } from '../../src/dsl/print.js';
import { DEFAULT_TUNING, DEFAULT_WHOLE_FILE_FOR, type Expr, type PolicyFile } from '../../src/dsl/ast.js';
import { HEAD } from './marks.js';

const ISSUE_EXAMPLE = `# comments run to end of line
tier nas  { local "/mnt/nas/tier" }
tier cold {
  s3 bucket "archive" prefix "gw1/" endpoint "http://127.0.0.1:7480" region "us-east-1"
  storage_class "STANDARD_IA"      # optional; also: profile "name", path_style true|false
  chunk 4MiB  readahead 16MiB  timeout 30s  concurrency 8   # optional tuning, defaults documented
}

fileset media {
  root "/srv/media"                # one or more absolute roots
  exclude "**/.cache/**", "**/*.part"
  include "**"                     # optional; default everything under root
}

policy cold_media on media {
  schedule "15 2 * * *"            # cron (5 or 6 fields), validated with cron-parser
  when usage > 85% until usage < 70%   # optional watermarks on the filesystem holding the root
  order by last_access asc         # last_access | last_mod | last_change | size, asc | desc
  limit 50000 files                # optional per-run caps; also: limit 2TiB
  concurrency 8

  rule tiny:    size < 64KiB                                   -> keep
  rule current: path ~ "projects/current/**"                   -> pin
  rule video:   name ~ "*.mkv" and last_access > 30d           -> release to cold
  rule stale:   last_mod > 90d and (size >= 1MiB or owner == "archive") -> archive to nas
}
`;

function ok(text: string): PolicyFile {
  const r = parsePolicy(text, 't.hsmpolicy');
  assert.deepEqual(r.diagnostics, [], JSON.stringify(r.diagnostics));
  assert.ok(r.policy);
  return r.policy;
}

/** Rule conditions as text, to compare structure without spans. */
const conds = (pf: PolicyFile) => pf.policies[0]!.rules.map((r) => printExpr(r.cond));

describe('the example policy of issue 2', () => {
  const pf = ok(ISSUE_EXAMPLE);

  test('tiers: local and s3 with options and tuning', () => {
    assert.equal(pf.tiers.length, 2);
    const nas = pf.tiers[0]!;
    const cold = pf.tiers[1]!;
    assert.deepEqual({ ...nas, span: undefined }, { kind: 'local', name: 'nas', path: '/mnt/nas/tier', tuning: DEFAULT_TUNING, span: undefined });
    assert.deepEqual(nas.span, { file: 't.hsmpolicy', line: 2, col: 6, length: 3 });
    assert.equal(cold.kind, 's3');
    if (cold.kind !== 's3') return;
    assert.equal(cold.bucket, 'archive');
    assert.equal(cold.prefix, 'gw1/');
    assert.equal(cold.endpoint, 'http://127.0.0.1:7480');
    assert.equal(cold.region, 'us-east-1');
    assert.equal(cold.storageClass, 'STANDARD_IA');
    assert.deepEqual(cold.tuning, { chunk: 4 * 1024 ** 2, readahead: 16 * 1024 ** 2, timeoutMs: 30_000, concurrency: 8 });
  });

  test('fileset: roots, include, exclude', () => {
    assert.deepEqual(pf.filesets.map(({ span: _s, ...f }) => f), [
      { name: 'media', roots: ['/srv/media'], include: ['**'], exclude: ['**/.cache/**', '**/*.part'] },
    ]);
  });

  test('policy options', () => {
    const p = pf.policies[0]!;
    assert.equal(p.name, 'cold_media');
    assert.equal(p.fileset, 'media');
    assert.deepEqual(p.filesetSpan, { file: 't.hsmpolicy', line: 15, col: 22, length: 5 });
    assert.equal(p.schedule?.cron, '15 2 * * *');
    assert.deepEqual({ high: p.watermark?.high, low: p.watermark?.low }, { high: 85, low: 70 });
    assert.deepEqual({ key: p.orderBy?.key, dir: p.orderBy?.dir }, { key: 'last_access', dir: 'asc' });
    assert.equal(p.limitFiles, 50000);
    assert.equal(p.limitBytes, undefined);
    assert.equal(p.concurrency, 8);
  });

  test('rules: names, conditions, actions, spans', () => {
    const p = pf.policies[0]!;
    assert.deepEqual(p.rules.map((r) => r.name), ['tiny', 'current', 'video', 'stale']);
    assert.deepEqual(conds(pf), [
      'size < 64KiB',
      'path ~ "projects/current/**"',
      'name ~ "*.mkv" and last_access > 30d',
      'last_mod > 90d and (size >= 1MiB or owner == "archive")',
    ]);
    assert.deepEqual(
      p.rules.map((r) => r.action),
      [
        { kind: 'keep', span: { file: 't.hsmpolicy', line: 22, col: 67, length: 4 } },
        { kind: 'pin', span: { file: 't.hsmpolicy', line: 23, col: 67, length: 3 } },
        {
          kind: 'release',
          tier: 'cold',
          tierSpan: { file: 't.hsmpolicy', line: 24, col: 78, length: 4 },
          span: { file: 't.hsmpolicy', line: 24, col: 67, length: 15 },
        },
        {
          kind: 'archive',
          tier: 'nas',
          tierSpan: { file: 't.hsmpolicy', line: 25, col: 87, length: 3 },
          span: { file: 't.hsmpolicy', line: 25, col: 76, length: 14 },
        },
      ],
    );
    const tiny = p.rules[0]!.cond;
    assert.deepEqual(tiny, {
      kind: 'cmp',
      attr: 'size',
      attrSpan: { file: 't.hsmpolicy', line: 22, col: 17, length: 4 },
      op: '<',
      opSpan: { file: 't.hsmpolicy', line: 22, col: 22, length: 1 },
      value: { kind: 'size', bytes: 65536, span: { file: 't.hsmpolicy', line: 22, col: 24, length: 5 } },
      span: { file: 't.hsmpolicy', line: 22, col: 17, length: 12 },
    });
    assert.deepEqual(p.rules[0]!.span, { file: 't.hsmpolicy', line: 22, col: 3, length: 68 });
  });

  test('recall defaults when no recall block', () => {
    assert.deepEqual(pf.recall, { wholeFileFor: DEFAULT_WHOLE_FILE_FOR });
  });
});

describe('constructs', () => {
  test('s3 extensions: profile, path_style, checksum', () => {
    const pf = ok('tier t { s3 bucket "b" profile "ci" path_style false checksum when_required }');
    const t = pf.tiers[0]!;
    assert.equal(t.kind, 's3');
    if (t.kind !== 's3') return;
    assert.deepEqual([t.profile, t.pathStyle, t.checksum, t.prefix], ['ci', false, 'when_required', '']);
  });

  test('local tier tuning options', () => {
    const pf = ok('tier t { local "/x" chunk 1MiB readahead 2MB timeout 2min concurrency 3 }');
    assert.deepEqual(pf.tiers[0]!.tuning, { chunk: 1024 ** 2, readahead: 2e6, timeoutMs: 120_000, concurrency: 3 });
  });

  test('an s3 tier reads ahead 64 MiB by default, other kinds 16 MiB; a readahead given wins', () => {
    const pf = ok('tier a { s3 bucket "b" }\ntier b { local "/x" }\ntier c { s3 bucket "b" readahead 8MiB }\ntier d { http "http://h/" }');
    assert.deepEqual(
      pf.tiers.map((t) => t.tuning.readahead),
      [64 * 1024 ** 2, 16 * 1024 ** 2, 8 * 1024 ** 2, 16 * 1024 ** 2],
    );
    assert.equal(pf.tiers[0]!.tuning.chunk, 16 * 1024); // the rest as for every tier
  });

  test('rate limits: bwlimit (a size per second) and tpslimit (requests per second), absent when unset', () => {
    const pf = ok('tier t { local "/x" bwlimit 50MiB tpslimit 20 }\ntier u { s3 bucket "b" bwlimit 1.5MB }\ntier v { local "/y" }');
    assert.deepEqual([pf.tiers[0]!.tuning.bwlimit, pf.tiers[0]!.tuning.tpslimit], [50 * 1024 ** 2, 20]);
    assert.deepEqual([pf.tiers[1]!.tuning.bwlimit, pf.tiers[1]!.tuning.tpslimit], [1.5e6, undefined]);
    assert.deepEqual(Object.keys(pf.tiers[2]!.tuning).sort(), ['chunk', 'concurrency', 'readahead', 'timeoutMs']);
    const printed = printPolicy(pf);
    assert.match(printed, /^  bwlimit 50MiB$/m);
    assert.match(printed, /^  tpslimit 20$/m);
    assert.match(printed, /^  bwlimit 1500KB$/m);
    const again = parsePolicy(printed, 'printed');
    assert.deepEqual(again.diagnostics, []);
    assert.deepEqual(again.policy!.tiers.map((t) => t.tuning), pf.tiers.map((t) => t.tuning));
  });

  test('several roots, repeated root/include/exclude lines add up; trailing slash dropped', () => {
    const pf = ok('fileset f { root "/a/", "/b" root "/c" include "x/**" include "y/**" exclude "**/*.o" }');
    const f = pf.filesets[0]!;
    assert.deepEqual([f.roots, f.include, f.exclude], [['/a', '/b', '/c'], ['x/**', 'y/**'], ['**/*.o']]);
  });

  test('policy extensions: timezone, check_interval, cooldown, keep_deleted, limit by size', () => {
    const pf = ok(`${HEAD}policy p on fs {
      timezone "Europe/Paris" check_interval 5min cooldown 7d keep_deleted 30d
      schedule "0 0 1 * * *" limit 2TiB limit 10 files order by size desc
      rule r: true -> keep }`);
    const p = pf.policies[0]!;
    assert.deepEqual(
      [p.timezone, p.checkIntervalMs, p.cooldownMs, p.keepDeletedMs, p.limitBytes, p.limitFiles, p.orderBy?.dir, p.schedule?.cron],
      ['Europe/Paris', 300_000, 7 * 86_400_000, 30 * 86_400_000, 2 * 1024 ** 4, 10, 'desc', '0 0 1 * * *'],
    );
  });

  test('absent options stay absent', () => {
    const p = ok(`${HEAD}policy p on fs { rule r: true -> keep }`).policies[0]!;
    assert.deepEqual(Object.keys(p).sort(), ['fileset', 'filesetSpan', 'name', 'rules', 'span']);
  });

  test('recall block', () => {
    const pf = ok('recall { whole_file_for "cp", "mv", "tar" }');
    assert.deepEqual(pf.recall.wholeFileFor, ['cp', 'mv', 'tar']);
    assert.deepEqual(pf.recall.span, { file: 't.hsmpolicy', line: 1, col: 1, length: 6 });
  });

  test('every attribute and operator', () => {
    const pf = ok(`${HEAD}policy p on fs {
      rule a: size != 1B and last_access <= 1d and last_mod >= 1h and last_change < 1w -> keep
      rule b: path !~ "a/**" and name == "x" and owner != "root" and group ~ "adm*" -> pin
      rule c: uid == 0 or gid > 100 or state == released or pinned == false -> unpin
      rule d: state != archived -> recall }`);
    assert.deepEqual(conds(pf), [
      'size != 1B and last_access <= 1d and last_mod >= 1h and last_change < 1w',
      'path !~ "a/**" and name == "x" and owner != "root" and group ~ "adm*"',
      'uid == 0 or gid > 100 or state == released or pinned == false',
      'state != archived',
    ]);
    assert.deepEqual(pf.policies[0]!.rules.map((r) => r.action.kind), ['keep', 'pin', 'unpin', 'recall']);
  });

  test('precedence: not > and > or; parentheses group', () => {
    const pf = ok(`${HEAD}policy p on fs {
      rule a: uid == 1 or uid == 2 and not uid == 3 -> keep
      rule b: (uid == 1 or uid == 2) and uid == 3 -> keep
      rule c: not (uid == 1 or uid == 2) -> keep
      rule d: not not uid == 1 -> keep }`);
    const [a, b, c] = pf.policies[0]!.rules.map((r) => r.cond);
    assert.equal(a!.kind, 'or');
    assert.equal(a!.kind === 'or' && a!.right.kind, 'and');
    assert.equal(b!.kind, 'and');
    assert.equal(b!.kind === 'and' && b!.left.kind, 'or');
    assert.equal(c!.kind === 'not' && c!.operand.kind, 'or');
    assert.deepEqual(conds(pf), ['uid == 1 or uid == 2 and not uid == 3', '(uid == 1 or uid == 2) and uid == 3', 'not (uid == 1 or uid == 2)', 'not not uid == 1']);
  });

  test('unconditional rules: true and * both give kind true', () => {
    const pf = ok(`${HEAD}policy p on fs { rule a: * -> keep }
      policy q on fs { rule b: true -> release to nas }`);
    assert.deepEqual(
      pf.policies.map((p) => p.rules[0]!.cond.kind),
      ['true', 'true'],
    );
  });

  test('keywords work as names and bare-word values', () => {
    const pf = ok(`tier local { local "/x" }\nfileset root { root "/d" }
      policy order on root { rule limit: owner == "root" and group != "local" -> release to local }`);
    assert.deepEqual([pf.tiers[0]!.name, pf.filesets[0]!.name, pf.policies[0]!.fileset, pf.policies[0]!.rules[0]!.name], ['local', 'root', 'root', 'limit']);
    const r = parsePolicy(`${HEAD}policy p on fs { rule a: state == root -> keep }`, 'x');
    assert.deepEqual(r.diagnostics.map((d) => d.code), ['unknown-state']);
  });

  test('long or-chains become shallow balanced trees', () => {
    const n = 5000;
    const cond = Array.from({ length: n }, (_, i) => `uid == ${i}`).join(' or ');
    const pf = ok(`${HEAD}policy p on fs { rule a: ${cond} -> keep }`);
    const depth = (e: Expr): number => (e.kind === 'or' || e.kind === 'and' ? 1 + Math.max(depth(e.left), depth(e.right)) : e.kind === 'not' ? 1 + depth(e.operand) : 0);
    const e = pf.policies[0]!.rules[0]!.cond;
    assert.ok(depth(e) <= 14, `depth ${depth(e)}`);
    assert.equal(printExpr(e), cond);
  });
});

describe('example policies in policies/', () => {
  const dir = new URL('../../policies/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.hsmpolicy'));
  test('there are at least five (four examples + demo)', () => assert.ok(files.length >= 5, files.join()));
  for (const f of files) {
    test(`${f} is valid and prints to a fixed point`, () => {
      const text = readFileSync(new URL(f, dir), 'utf8');
      const r = parsePolicy(text, f);
      assert.deepEqual(r.diagnostics, []);
      const once = printPolicy(r.policy!);
      const again = parsePolicy(once, 'printed');
      assert.deepEqual(again.diagnostics, []);
      assert.equal(printPolicy(again.policy!), once);
      assert.ok(r.policy!.policies.length >= 1);
    });
  }
  test('demo policy has the paths the README demo relies on', () => {
    const pf = ok(readFileSync(new URL('demo.hsmpolicy', dir), 'utf8'));
    assert.deepEqual(pf.filesets[0]!.roots, ['/mnt/tier-demo/data']);
    const t = pf.tiers[0]!;
    assert.equal(t.kind === 'local' && t.path, '/var/lib/tier-demo/tier');
    assert.equal(pf.policies[0]!.name, 'demo');
  });
});
