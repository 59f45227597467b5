import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';

const CLI = join(import.meta.dirname, '../../src/cli/main.ts');
function tier(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { encoding: 'utf8', cwd: join(import.meta.dirname, '../..') });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('tier apply and tier status as a real process (no daemon)', () => {
  let fs: LoopFs;
  let policy: string;
  let state: string;
  let data: string;
  before(() => {
    fs = mountLoopFs('ext4', 32);
    data = join(fs.dir, 'data');
    state = join(fs.scratch, 'state');
    mkdirSync(join(data, 'sub'), { recursive: true });
    writeFileSync(join(data, 'old file.bin'), Buffer.alloc(200_000, 1));
    writeFileSync(join(data, 'sub/app.log'), Buffer.alloc(9_000, 2));
    writeFileSync(join(data, 'new.bin'), Buffer.alloc(10_000, 3));
    const old = new Date(Date.now() - 100 * 86_400_000);
    utimesSync(join(data, 'old file.bin'), old, old);
    policy = join(fs.scratch, 'p.hsmpolicy');
    writeFileSync(
      policy,
      `tier nas { local "${join(fs.scratch, 'tier')}" }
fileset d { root "${data}" }
policy p on d {
  rule logs: name ~ "*.log" -> archive to nas
  rule old: last_access > 30d -> release to nas
}
`,
    );
  });
  after(() => fs?.unmount());

  test('--dry-run prints one line per file with size, age, rule and tier, a summary, and changes nothing', () => {
    const r = tier('apply', policy, '--dry-run', '--state-dir', state);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    const rel = lines.find((l) => l.includes('old file.bin'))!;
    assert.match(rel, /^plan\s+release\s+nas\s+195 KiB\s+100d\s+rule old \(.*p\.hsmpolicy:5:3\)\s+old file\.bin$/);
    assert.match(lines.find((l) => l.includes('app.log'))!, /archive\s+nas\s+8\.8 KiB.*rule logs .*sub\/app\.log$/);
    assert.ok(!r.out.includes('new.bin'));
    assert.match(r.out, /would release: 1 file, 195 KiB/);
    assert.match(r.out, /would archive: 1 file, 8\.8 KiB/);
    assert.ok(!existsSync(join(fs.scratch, 'tier')), 'no object written');
    assert.ok(!existsSync(state), 'no catalog created by a dry run');
  });

  test('--json prints JSON lines ending with a summary', () => {
    const r = tier('apply', policy, '--dry-run', '--json', '--state-dir', state);
    assert.equal(r.code, 0, r.err);
    const objs = r.out.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(objs.filter((o) => o.type === 'action').map((o) => [o.path, o.action, o.rule, o.tier, o.size]).sort(), [
      ['old file.bin', 'release', 'old', 'nas', 200_000],
      ['sub/app.log', 'archive', 'logs', 'nas', 9_000],
    ]);
    const summary = objs.at(-1);
    assert.equal(summary.type, 'summary');
    assert.deepEqual(summary.actions, { release: { files: 1, bytes: 200_000 }, archive: { files: 1, bytes: 9_000 } });
  });

  test('without a daemon, releases fail with a clear message and exit 1; archives are done', () => {
    const r = tier('apply', policy, '--state-dir', state);
    assert.equal(r.code, 1);
    assert.match(r.err, /1 action failed/);
    assert.match(r.err, /no recall service running: start `tier daemon`/);
    assert.ok(!r.err.includes('    at '), 'no stack trace');
    assert.match(r.out, /done\s+archive.*sub\/app\.log/);
    assert.ok(readdirSync(join(fs.scratch, 'tier'), { recursive: true }).length > 0);
    assert.ok(statSync(join(data, 'old file.bin')).blocks > 0);
  });

  test('tier status --json has exactly the documented keys', () => {
    const r = tier('status', '--json', join(data, 'sub/app.log'), join(data, 'new.bin'));
    assert.equal(r.code, 0, r.err);
    const rows = JSON.parse(r.out);
    assert.deepEqual(Object.keys(rows[0]), ['path', 'state', 'pinned', 'size', 'residentBytes', 'tier', 'key']);
    assert.equal(rows[0].state, 'archived');
    assert.equal(rows[0].tier, 'nas');
    assert.equal(rows[0].size, 9000);
    assert.equal(rows[0].residentBytes, 9000);
    assert.equal(rows[1].state, 'resident');
    assert.equal(rows[1].key, null);
  });

  test('tier status of a missing file says so and exits 1; a bad policy gives diagnostics, not a stack', () => {
    const s = tier('status', join(data, 'nope'));
    assert.equal(s.code, 1);
    assert.match(s.err, /nope: no such file/);
    const bad = join(fs.scratch, 'bad.hsmpolicy');
    writeFileSync(bad, 'policy p on nowhere {\n  rule r: size > 1 -> release to ghost\n}\n');
    const r = tier('apply', bad, '--state-dir', state);
    assert.equal(r.code, 1);
    assert.match(r.err, /bad\.hsmpolicy:\d+:\d+: error/);
    assert.match(r.err, /nothing was run/);
    assert.ok(!r.err.includes('    at '));
    const unknown = tier('apply', policy, '--policy', 'nope', '--state-dir', state);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /no policy named "nope"/);
  });

  test('pin and unpin by hand; a pinned file is not released by a policy', () => {
    const f = join(data, 'old file.bin');
    assert.equal(tier('pin', f, '--state-dir', state).code, 0);
    let st = JSON.parse(tier('status', '--json', f).out)[0];
    assert.equal(st.pinned, true);
    const r = tier('apply', policy, '--dry-run', '--json', '--state-dir', state);
    assert.equal(JSON.parse(r.out.trim().split('\n').at(-1)!).policies[0].skipped.pinned, 1);
    assert.equal(tier('unpin', f, '--state-dir', state).code, 0);
    st = JSON.parse(tier('status', '--json', f).out)[0];
    assert.equal(st.pinned, false);
    const rel = tier('release', f, '--config', policy, '--state-dir', state);
    assert.equal(rel.code, 1);
    assert.match(rel.err, /no recall service running/);
  });
});
