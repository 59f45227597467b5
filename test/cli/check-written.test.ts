// `tier check` as a real process on the forms people write (issue 16): each slip gives
// exit 1 and exactly one diagnostic at its exact position; the accepted forms check clean
// and `--print` writes them back in canonical form.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function tier(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, encoding: 'utf8' });
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, r.stderr);
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const policy = (rule: string) => `tier nas { local "/t" }
fileset s { root "/scratch" }
policy p on s {
  ${rule}
}
`;

let dir = '';
let n = 0;
const file = (text: string) => {
  const p = join(dir, `f${n++}.hsmpolicy`);
  writeFileSync(p, text);
  return p;
};

describe('tier check on the forms people write', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tier-check-written-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('accepted: units with a space or in words, in-lists; --print normalises them', () => {
    const p = file(policy(`rule a: size > 1 GB and last_access > 30 days and owner in ("alice", "bob") and name not in ("*.tmp") -> release to nas`));
    const r = tier('check', '--print', p);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.match(r.out, /\n  rule a: size > 1GB and last_access > 30d and owner in \("alice", "bob"\) and name not in \("\*\.tmp"\) -> release to nas\n/);
  });

  // [rule, code, line:col, what the message or hint says]
  const slips: [string, string, string, RegExp][] = [
    ['rule a: size > 1 gigs -> release to nas', 'unknown-unit', '4:18', /did you mean 1GB\?/],
    ['rule a: last_access > 2 months -> release to nas', 'unknown-unit', '4:25', /60d or 8w/],
    ['rule a: last_access > 30 Days -> release to nas', 'unknown-unit', '4:25', /did you mean 30d\?/],
    ['rule a: size > 1B uid == 3 -> release to nas', 'syntax', '4:21', /expected '->' but found 'uid'/],
    ['rule a: uid in (1000, "bob") -> keep', 'type-mismatch', '4:25', /compare names with owner/],
    ['rule a: size in (1GB, 2GB) -> keep', 'invalid-operator', '4:16', /'in' does not apply to size/],
    ['rule a: owner in ("a", "b" -> keep', 'syntax', '4:30', /expected '\)' but found '->'/],
    ['rule a: owner IN ("a", "b") -> keep', 'keyword-case', '4:17', /write 'in'/],
  ];
  for (const [rule, code, at, what] of slips) {
    test(`${rule}: exit 1, one ${code} at ${at}`, () => {
      const p = file(policy(rule));
      const r = tier('check', p);
      assert.equal(r.code, 1, r.err);
      const heads = r.err.split('\n').filter((l) => l.startsWith(`${p}:`));
      assert.deepEqual(heads.map((l) => l.replace(/: error\[([a-z-]+)\]: .*/, ' $1')), [`${p}:${at} ${code}`, `${p}: 1 error`]);
      assert.match(r.err, what);
    });
  }

  test('never-matches: the hint gives the pattern relative to the root; exit 0 (a warning)', () => {
    const p = file(policy('rule a: path ~ "/scratch/projects/**" -> keep'));
    const r = tier('check', p);
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.err,
      [
        `${p}:4:18: warning[never-matches]: path is relative to the fileset root, so "/scratch/projects/**" never matches`,
        '4 |   rule a: path ~ "/scratch/projects/**" -> keep',
        '  |                  ^^^^^^^^^^^^^^^^^^^^^^',
        '  = help: write it relative to the root "/scratch": "projects/**"',
        '',
      ].join('\n'),
    );
  });

  test('--json carries the same single diagnostic', () => {
    const p = file(policy('rule a: size > 1 gigs -> release to nas'));
    const r = tier('check', '--json', p);
    assert.equal(r.code, 1);
    const doc = JSON.parse(r.out);
    assert.deepEqual(
      doc.files[0].diagnostics.map((d: { line: number; col: number; length: number; code: string }) => [d.line, d.col, d.length, d.code]),
      [[4, 18, 6, 'unknown-unit']],
    );
  });
});
