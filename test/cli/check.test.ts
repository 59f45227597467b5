// `tier check` as a real process: exit codes, stderr format, --json, --print.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function tier(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, encoding: 'utf8' });
  // Whatever happens, the user never sees a stack trace.
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, r.stderr);
  return { code: r.status, out: r.stdout, err: r.stderr };
}

let dir = '';
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const BAD = `tier nas { local "/t" }
fileset fs { root "/d" }
policy p on fs {
  rule a: size > 30d -> keep
  rule b: true -> release to glacier
}
`;

describe('tier check', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tier-check-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('every example policy is valid: exit 0, one ok line each, nothing on stderr', () => {
    const files = readdirSync(join(ROOT, 'policies')).filter((f) => f.endsWith('.hsmpolicy')).map((f) => `policies/${f}`);
    const r = tier('check', ...files);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.deepEqual(
      r.out.trim().split('\n').map((l) => l.split(':')[0]),
      files,
    );
    assert.match(r.out, /policies\/media-archive\.hsmpolicy: ok \(2 tiers, 1 fileset, 1 policy\)/);
  });

  test('errors: exit 1, each as FILE:LINE:COL: error[code]: message + source line + carets', () => {
    const p = file('bad.hsmpolicy', BAD);
    const r = tier('check', p);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.equal(
      r.err,
      [
        `${p}:4:18: error[type-mismatch]: size compares with a size such as 64KiB, not a duration (30d)`,
        '4 |   rule a: size > 30d -> keep',
        '  |                  ^^^',
        `${p}:5:30: error[unknown-tier]: tier 'glacier' is not defined`,
        '5 |   rule b: true -> release to glacier',
        '  |                              ^^^^^^^',
        '  = help: defined tiers: nas',
        `${p}: 2 errors`,
        '',
      ].join('\n'),
    );
  });

  test('warnings only: exit 0, warning printed', () => {
    const p = file('warn.hsmpolicy', BAD.replace('30d', '30MiB').replace('glacier', 'nas').replace('nas\n}', 'nas\n  rule c: uid == 1 -> pin\n}'));
    const r = tier('check', p);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, new RegExp(`^${p}:6:3: warning\\[unreachable-rule\\]: rule 'c' is never reached`));
    assert.match(r.out, /ok \(1 tier, 1 fileset, 1 policy; 1 warning\)/);
  });

  test('a good and a bad file: exit 1, both reported', () => {
    const r = tier('check', 'policies/demo.hsmpolicy', file('bad2.hsmpolicy', BAD));
    assert.equal(r.code, 1);
    assert.match(r.out, /demo\.hsmpolicy: ok/);
    assert.match(r.err, /bad2\.hsmpolicy: 2 errors/);
  });

  test('usage errors exit 2: missing file, directory, unknown flag, no file', () => {
    const missing = tier('check', join(dir, 'nope.hsmpolicy'));
    assert.equal(missing.code, 2);
    assert.match(missing.err, /cannot read policy .*nope\.hsmpolicy: no such file \(ENOENT\)/);
    assert.equal(tier('check', dir).code, 2);
    const flag = tier('check', '--frobnicate', 'policies/demo.hsmpolicy');
    assert.equal(flag.code, 2);
    assert.match(flag.err, /unknown option '--frobnicate'/);
    assert.equal(tier('check').code, 2);
  });

  test('an unreadable file wins over an invalid one: exit 2', () => {
    assert.equal(tier('check', file('bad3.hsmpolicy', BAD), join(dir, 'missing')).code, 2);
  });

  test('--json: one JSON document on stdout with every diagnostic', () => {
    const p = file('bad4.hsmpolicy', BAD);
    const r = tier('check', '--json', p, 'policies/demo.hsmpolicy');
    assert.equal(r.code, 1);
    assert.equal(r.err, '');
    const doc = JSON.parse(r.out);
    assert.equal(doc.valid, false);
    assert.equal(doc.files.length, 2);
    assert.deepEqual(doc.files[0].diagnostics[1], {
      file: p,
      line: 5,
      col: 30,
      length: 7,
      severity: 'error',
      code: 'unknown-tier',
      message: "tier 'glacier' is not defined",
      hint: 'defined tiers: nas',
    });
    assert.deepEqual([doc.files[1].valid, doc.files[1].errors, doc.files[1].diagnostics], [true, 0, []]);
  });

  test('--print: the normalised policy, which checks clean and prints the same again', () => {
    const r = tier('check', '--print', 'policies/media-archive.hsmpolicy');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^tier nas \{\n  local "\/mnt\/nas\/tier"\n  chunk 16KiB\n/);
    assert.match(r.out, /  rule video:   \(name ~ "\*\.mkv" or name ~ "\*\.mov"\) and last_access > 30d -> release to cold\n/);
    const again = tier('check', '--print', file('printed.hsmpolicy', r.out));
    assert.equal(again.code, 0, again.err);
    assert.equal(again.out, r.out);
  });

  test('--print of an invalid file prints nothing on stdout and exits 1', () => {
    const r = tier('check', '--print', file('bad5.hsmpolicy', BAD));
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(r.err, /not printed: 2 errors/);
  });

  test('binary garbage: exit 1 with diagnostics, no crash', () => {
    const bytes = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919) % 256));
    const p = join(dir, 'garbage.hsmpolicy');
    writeFileSync(p, bytes);
    const r = tier('check', p);
    assert.equal(r.code, 1);
    assert.match(r.err, /garbage\.hsmpolicy:1:1: error\[/);
  });
});
