import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '../../src/dsl/index.js';
import type { PolicyFile } from '../../src/dsl/ast.js';
import type { FileFacts } from '../../src/engine/facts.js';
import { explainFile } from '../../src/reports/explain.js';
import { filesetMembership } from '../../src/reports/membership.js';
import { formatExplanation } from '../../src/cli/format/explain-format.js';
import { RecallLog, recallLogPath } from '../../src/reports/recall-log.js';

const D = 86_400_000;
const NOW = Date.parse('2026-06-01T12:00:00Z');

function policy(text: string): PolicyFile {
  const { policy: pf, diagnostics } = parsePolicy(text, 'test.hsmpolicy');
  assert.ok(pf, JSON.stringify(diagnostics));
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  return pf;
}

function facts(over: Partial<FileFacts> = {}): FileFacts {
  return {
    path: 'x', absPath: '/srv/data/projects/a.mkv', name: 'a.mkv', root: '/srv/data', size: 5 * 1024 * 1024, blocks: 10240,
    atimeMs: NOW - 40 * D, mtimeMs: NOW - 100 * D, ctimeMs: NOW - 100 * D, mtimeNs: '0', mode: 0o100644,
    uid: 1000, gid: 1000, owner: 'alice', group: 'staff', dev: 7, ino: 99, state: 'resident', pinned: false, record: null,
    ...over,
  };
}

const POLICY = `
tier cold { local "/tiers/cold" }
fileset media { root "/srv/data" exclude "**/.cache/**", "**/*.part" }
fileset other { root "/srv/other" }
policy cold_media on media {
  schedule "15 2 * * *"
  timezone "UTC"
  when usage > 85% until usage < 70%
  cooldown 7d
  rule tiny: size < 64KiB -> keep
  rule current: path ~ "projects/current/**" -> pin
  rule video: name ~ "*.mkv" and last_access > 30d -> release to cold
  rule stale: last_mod > 90d -> archive to cold
}
`;

describe('tier explain (pure)', () => {
  test('every rule in order, each comparison with its value; the first match decides', () => {
    const pf = policy(POLICY);
    const ex = explainFile(pf, facts(), { now: NOW, usage: new Map([['/srv/data', 91]]), lastRecallAt: null });
    assert.equal(ex.policies.length, 1);
    const p = ex.policies[0]!;
    assert.equal(p.rel, 'projects/a.mkv');
    assert.equal(p.decidedBy, 'video');
    assert.deepEqual(p.rules.map((r) => [r.rule, r.matched]), [['tiny', false], ['current', false], ['video', true], ['stale', true]]);
    const video = p.rules[2]!.conditions;
    assert.deepEqual(video.map((c) => [c.attr, c.actual, c.result]), [['name', 'a.mkv', true], ['last_access', 40 * D, true]]);
    assert.deepEqual(p.watermark, { high: 85, low: 70, usage: 91, triggered: true });
    assert.equal(p.schedule?.nextRunAt, Date.parse('2026-06-02T02:15:00Z'));
    assert.equal(p.next.action, 'release');
    assert.equal(p.next.tier, 'cold');
    assert.equal(p.next.rule, 'video');
    assert.match(p.next.why, /next scheduled run/);
    assert.deepEqual(ex.outside, [{ fileset: 'other', reason: 'not under any root (/srv/other)' }]);
  });

  test('watermark below high: the rule matches but the next run does nothing, and says why', () => {
    const ex = explainFile(policy(POLICY), facts(), { now: NOW, usage: new Map([['/srv/data', 50]]), lastRecallAt: null });
    const p = ex.policies[0]!;
    assert.equal(p.decidedBy, 'video');
    assert.equal(p.next.action, 'none');
    assert.match(p.next.why, /usage 50\.0% is not above the high watermark 85%/);
  });

  test('cooldown: a file recalled 2 days ago is not released; 8 days ago it is', () => {
    const pf = policy(POLICY);
    const usage = new Map([['/srv/data', 99]]);
    const recent = explainFile(pf, facts(), { now: NOW, usage, lastRecallAt: NOW - 2 * D }).policies[0]!;
    assert.equal(recent.cooldown?.active, true);
    assert.equal(recent.next.action, 'none');
    assert.match(recent.next.why, /cooldown/);
    const old = explainFile(pf, facts(), { now: NOW, usage, lastRecallAt: NOW - 8 * D }).policies[0]!;
    assert.equal(old.cooldown?.active, false);
    assert.equal(old.next.action, 'release');
  });

  test('already released, pinned, kept, unmatched: no action, each with its reason', () => {
    const pf = policy(POLICY);
    const usage = new Map([['/srv/data', 99]]);
    const run = (f: Partial<FileFacts>) => explainFile(pf, facts(f), { now: NOW, usage, lastRecallAt: null }).policies[0]!;
    assert.match(run({ state: 'released' }).next.why, /already done \(state released\)/);
    assert.match(run({ pinned: true }).next.why, /pinned/);
    const tiny = run({ size: 100 });
    assert.equal(tiny.decidedBy, 'tiny');
    assert.match(tiny.next.why, /rule tiny says keep/);
    const none = run({ absPath: '/srv/data/notes.txt', name: 'notes.txt', mtimeMs: NOW - D, atimeMs: NOW });
    assert.equal(none.decidedBy, null);
    assert.match(none.next.why, /no rule matches/);
  });

  test('text rendering names the deciding rule with its source position', () => {
    const ex = explainFile(policy(POLICY), facts(), { now: NOW, usage: new Map([['/srv/data', 91]]), lastRecallAt: null });
    const text = formatExplanation(ex, NOW).join('\n');
    assert.match(text, /rule video +test\.hsmpolicy:12:3 +DECIDES/);
    assert.match(text, /rule stale .* matches \(an earlier rule decided\)/);
    assert.match(text, /yes +last_access > 30d +\(last_access = 40d\)/);
    assert.match(text, /no +size < 64KiB +\(size = 5\.00 MiB\)/);
    assert.match(text, /next run: release to cold \(rule video\)/);
  });
});

describe('fileset membership', () => {
  const pf = policy(POLICY);
  const media = pf.filesets[0]!;
  test('under a root, relative path as the scan sees it', () => {
    assert.deepEqual(filesetMembership(media, '/srv/data/a/b.txt'), { member: true, root: '/srv/data', rel: 'a/b.txt' });
    assert.deepEqual(filesetMembership(media, '/srv/data//a/./b.txt'), { member: true, root: '/srv/data', rel: 'a/b.txt' });
  });
  test('outside, in an excluded directory, or excluded by name', () => {
    assert.match((filesetMembership(media, '/srv/database/x') as { reason: string }).reason, /not under any root/);
    assert.match((filesetMembership(media, '/srv/data/p/.cache/x') as { reason: string }).reason, /directory p\/\.cache is excluded/);
    assert.match((filesetMembership(media, '/srv/data/dl.part') as { reason: string }).reason, /dl\.part matches an exclude/);
  });
  test('include lists restrict', () => {
    const pf2 = policy('fileset f { root "/r" include "*.log" }');
    assert.equal(filesetMembership(pf2.filesets[0]!, '/r/a.log').member, true);
    assert.match((filesetMembership(pf2.filesets[0]!, '/r/a.txt') as { reason: string }).reason, /matches no include/);
  });
});

describe('tier explain (CLI process)', () => {
  const base = mkdtempSync(join(tmpdir(), 'tier-explain-'));
  const data = join(base, 'data');
  const state = join(base, 'state');
  mkdirSync(join(data, 'sub'), { recursive: true });
  const file = join(data, 'sub', 'big.bin');
  writeFileSync(file, Buffer.alloc(2 * 1024 * 1024, 7));
  const old = new Date(Date.now() - 40 * D);
  utimesSync(file, old, old);
  const pfile = join(base, 'p.hsmpolicy');
  writeFileSync(
    pfile,
    `tier cold { local "${join(base, 'tier')}" }
fileset d { root "${data}" }
policy p on d {
  cooldown 7d
  rule small: size < 1MiB -> keep
  rule old: last_access > 30d -> release to cold
}
`,
  );
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', cwd: process.cwd() });

  test('--json names the deciding rule and the action; the recall log feeds the cooldown', () => {
    let r = cli('explain', file, '--config', pfile, '--json', '--state-dir', state);
    assert.equal(r.status, 0, r.stderr);
    let j = JSON.parse(r.stdout);
    assert.equal(j.policies[0].decidedBy, 'old');
    assert.equal(j.policies[0].next.action, 'release');
    assert.equal(j.file.state, 'resident');
    const log = new RecallLog(recallLogPath(state));
    log.record({ time: Date.now() - D, path: file, bytes: 10, latencyMs: 1 });
    log.close();
    r = cli('explain', file, '--config', pfile, '--json', '--state-dir', state);
    j = JSON.parse(r.stdout);
    assert.equal(j.policies[0].cooldown.active, true);
    assert.equal(j.policies[0].next.action, 'none');
  });

  test('a missing file or a broken policy: message with context, non-zero exit, no stack', () => {
    let r = cli('explain', join(data, 'nope'), '--config', pfile, '--state-dir', state);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /explain .*nope: lstat: ENOENT/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const bad = join(base, 'bad.hsmpolicy');
    writeFileSync(bad, 'policy p on nothing {\n  rule r: size > 1MiB -> release to nowhere\n}\n');
    r = cli('explain', file, '--config', bad);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /bad\.hsmpolicy:1:\d+: error/);
    r = cli('explain', file);
    assert.equal(r.status, 2, 'missing --config is a usage error');
  });

  after(() => rmSync(base, { recursive: true, force: true }));
});
