import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '../../src/dsl/index.js';
import type { PolicyFile } from '../../src/dsl/ast.js';
import type { FileFacts } from '../../src/engine/facts.js';
import { Catalog } from '../../src/engine/catalog.js';
import { DaemonOps, errorKind } from '../../src/worker/daemon-ops.js';
import { applyCooldown, cooldownSince, inCooldown } from '../../src/schedule/cooldown.js';
import { parseListen, listenMetrics } from '../../src/metrics/metrics-http.js';
import type { Trigger } from '../../src/schedule/scheduler.js';
import { silentLogger } from '../../src/log.js';
import { FakeClock } from './fake-clock.js';

function pf(text: string, file = 'p.hsmpolicy'): PolicyFile {
  const r = parsePolicy(text, file);
  assert.ok(r.policy, JSON.stringify(r.diagnostics));
  return r.policy;
}

const facts = (absPath: string, over: Partial<FileFacts> = {}): FileFacts => ({
  path: absPath.slice(1), absPath, name: 'f', root: '/', size: 10, blocks: 8, atimeMs: 0, mtimeMs: 0, ctimeMs: 0, mtimeNs: '0',
  mode: 0o100644, uid: 0, gid: 0, owner: 'root', group: 'root', dev: 1, ino: 1, state: 'resident', pinned: false, record: null, ...over,
});

function fetchText(url: string): Promise<{ status: number; body: string; type?: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    }).on('error', reject);
  });
}

describe('cooldown', () => {
  const p = pf(`tier t { local "/t" }
fileset f { root "/d" }
policy p on f { cooldown 1d
  rule a: name == "keep" -> archive to t
  rule r: size > 0 -> release to t }`).policies[0]!;
  const release = p.rules[1]!;
  const archive = p.rules[0]!;
  const recent = { paths: new Set(['/d/hot']), inodes: new Set(['1:77']) };

  test('a release of a recently recalled file (by path or inode) is held back; archives are not', () => {
    assert.equal(inCooldown(facts('/d/hot'), release, recent), true);
    assert.equal(inCooldown(facts('/d/renamed', { ino: 77 }), release, recent), true);
    assert.equal(inCooldown(facts('/d/cold', { ino: 5 }), release, recent), false);
    assert.equal(inCooldown(facts('/d/hot'), archive, recent), false);
    assert.equal(inCooldown(facts('/d/hot', { state: 'released' }), release, recent), false);
    const { decisions, cooled } = applyCooldown(p, [{ file: facts('/d/hot'), rule: release }, { file: facts('/d/cold', { ino: 5 }), rule: release }], recent);
    assert.deepEqual(decisions.map((d) => d.file.absPath), ['/d/cold']);
    assert.deepEqual(cooled.map((d) => d.file.absPath), ['/d/hot']);
    assert.equal(cooldownSince(p, 10 * 86_400_000), 9 * 86_400_000);
  });

  test('a policy without cooldown holds nothing back', () => {
    const q = pf(`tier t { local "/t" }\nfileset f { root "/d" }\npolicy q on f { rule r: size > 0 -> release to t }`).policies[0]!;
    assert.equal(applyCooldown(q, [{ file: facts('/d/hot'), rule: q.rules[0]! }], recent).cooled.length, 0);
    assert.equal(cooldownSince(q, 5), null);
  });
});

describe('metrics listener', () => {
  test('only loopback addresses are accepted', () => {
    assert.deepEqual(parseListen('9464'), { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
    assert.deepEqual(parseListen('localhost:80'), { host: '127.0.0.1', port: 80 });
    assert.match(parseListen('0.0.0.0:9464') as string, /only loopback/);
    assert.match(parseListen('10.1.2.3:9464') as string, /only loopback/);
    assert.match(parseListen('99999') as string, /out of range/);
    assert.deepEqual(parseListen('0'), { host: '127.0.0.1', port: 0 });
    assert.match(parseListen('abc') as string, /expected PORT or HOST:PORT/);
  });

  test('GET /metrics serves the text format; other paths 404', async () => {
    const l = await listenMetrics({ host: '127.0.0.1', port: 0 }, () => '# HELP x X.\n# TYPE x counter\nx 1\n');
    try {
      const r = await fetchText(`http://127.0.0.1:${l.port}/metrics`);
      assert.equal(r.status, 200);
      assert.match(r.type ?? '', /^text\/plain; version=0\.0\.4/);
      assert.equal(r.body, '# HELP x X.\n# TYPE x counter\nx 1\n');
      assert.equal((await fetchText(`http://127.0.0.1:${l.port}/other`)).status, 404);
    } finally {
      await l.close();
    }
  });
});

describe('DaemonOps', () => {
  test('schedules policies from every file, feeds recalls to the log and metrics, reads state totals from the catalog', async () => {
    const state = mkdtempSync(join(tmpdir(), 'tier-ops-'));
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:30Z'));
    const runs: [string, string, Trigger['kind']][] = [];
    const cat = new Catalog(join(state, 'catalog.db'));
    cat.upsert({ dev: 1, ino: 1, path: '/d/a', state: 'released', pinned: false, tier: 't', key: 'k1', size: 1000, sha256: null, archivedAt: 1, updatedAt: 1 });
    cat.upsert({ dev: 1, ino: 2, path: '/d/b', state: 'released', pinned: false, tier: 't', key: 'k2', size: 500, sha256: null, archivedAt: 1, updatedAt: 1 });
    cat.upsert({ dev: 1, ino: 3, path: '/d/c', state: 'archived', pinned: false, tier: 't', key: 'k3', size: 7, sha256: null, archivedAt: 1, updatedAt: 1 });
    const real = new DaemonOps({
      stateDir: state,
      log: silentLogger,
      clock,
      policies: [
        pf(`tier t { local "/t" }\nfileset f { root "/d" }\npolicy nightly on f { schedule "* * * * *" timezone "UTC" rule r: size > 0 -> release to t }\npolicy manual on f { rule r: size > 0 -> archive to t }`, '/etc/tier/a.hsmpolicy'),
        pf(`tier t { local "/t" }\nfileset f { root "/d" }\npolicy nightly on f { schedule "*/2 * * * *" timezone "UTC" rule r: size > 0 -> release to t }`, '/etc/tier/b.hsmpolicy'),
      ],
      runPolicy: async (file, policy, trigger) => void runs.push([file, policy, trigger.kind]),
      queueDepth: () => ({ recall: 3 }),
    });
    try {
      await real.start();
      await clock.advance(30_000 + 60_000); // 00:01 and 00:02
      assert.deepEqual(runs.sort(), [
        ['/etc/tier/a.hsmpolicy', 'nightly', 'schedule'],
        ['/etc/tier/a.hsmpolicy', 'nightly', 'schedule'],
        ['/etc/tier/b.hsmpolicy', 'nightly', 'schedule'],
      ]);
      real.onRecall({ time: 5, path: '/d/a', bytes: 4096, latencyMs: 12, pid: 1, comm: 'cat' });
      real.onRecall({ time: 6, path: '/d/b', bytes: 0, latencyMs: 30_000, pid: 1, comm: 'cat', error: 'tier t: get "k2": Timeout: no answer' });
      assert.equal(real.recallLog.recentlyRecalled({ path: '/d/a' }, 0), 5);
      const text = real.metricsText();
      assert.match(text, /^tier_recalls_total 1$/m);
      assert.match(text, /^tier_recall_bytes_total 4096$/m);
      assert.match(text, /^tier_recall_errors_total\{kind="Timeout"\} 1$/m);
      assert.match(text, /^tier_bytes\{state="released"\} 1500$/m);
      assert.match(text, /^tier_files\{state="archived"\} 1$/m);
      assert.match(text, /^tier_queue_depth\{queue="recall"\} 3$/m);
      assert.match(text, /^tier_policy_runs_total\{policy="\/etc\/tier\/a\.hsmpolicy:nightly",trigger="schedule",outcome="ok"\} 2$/m);
    } finally {
      await real.stop();
      cat.close();
      rmSync(state, { recursive: true, force: true });
    }
  });

  test('the loopback listener serves the same registry; a non-loopback address refuses to start', async () => {
    const state = mkdtempSync(join(tmpdir(), 'tier-ops-'));
    const bad = new DaemonOps({ stateDir: state, log: silentLogger, policies: [], runPolicy: async () => {}, metricsListen: '0.0.0.0:9464' });
    await assert.rejects(bad.start(), /only loopback/);
    await bad.stop();
    const ops = new DaemonOps({ stateDir: state, log: silentLogger, policies: [], runPolicy: async () => {}, metricsListen: '127.0.0.1:0' });
    try {
      await ops.start();
      ops.onRecall({ time: 1, path: '/x', bytes: 10, latencyMs: 1, pid: 1, comm: 'cat' });
      const r = await fetchText(`http://127.0.0.1:${ops.metricsPort}/metrics`);
      assert.equal(r.status, 200);
      assert.match(r.body, /^tier_recall_bytes_total 10$/m);
      assert.equal(r.body, ops.metricsText());
    } finally {
      await ops.stop();
      rmSync(state, { recursive: true, force: true });
    }
  });

  test('error kinds are bounded labels', () => {
    assert.equal(errorKind('tier cold: get "k": NotFound: gone'), 'NotFound');
    assert.equal(errorKind('pwrite /d/x: ENOSPC'), 'ENOSPC');
    assert.equal(errorKind('something odd happened'), 'other');
  });
});

describe('DaemonOps garbage collection', () => {
  test('collects orphans on a timer from the daemon\'s open tiers, after keep_deleted', async () => {
    const { LocalTier } = await import('../../src/tiers/local.js');
    const { newKey } = await import('../../src/engine/execute.js');
    const { Readable } = await import('node:stream');
    const { createHash } = await import('node:crypto');
    const { existsSync, mkdirSync, utimesSync } = await import('node:fs');
    const base = mkdtempSync(join(tmpdir(), 'tier-ops-gc-'));
    const tierDir = join(base, 'tier');
    const data = join(base, 'data');
    mkdirSync(tierDir);
    mkdirSync(data);
    const tier = new LocalTier('t', tierDir);
    const key = newKey();
    const buf = Buffer.from('orphan of a deleted file');
    await tier.put(key, Readable.from([buf]), buf.length, { sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length, path: join(data, 'gone'), mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 });
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(join(tierDir, key), old, old);
    const clock = new FakeClock(Date.now());
    const ops = new DaemonOps({
      stateDir: join(base, 'state'),
      log: silentLogger,
      clock,
      gcTiers: new Map([['t', tier]]),
      policies: [pf(`tier t { local "${tierDir}" }\nfileset f { root "${data}" }\npolicy p on f { keep_deleted 2s rule r: size > 0 -> release to t }`, join(base, 'p.hsmpolicy'))],
      runPolicy: async () => {},
    });
    try {
      await ops.start();
      for (let i = 0; i < 2; i++) {
        await clock.advance(1000); // gc every keep_deleted / 2
        await ops.gcIdle();
        assert.ok(existsSync(join(tierDir, key)), `kept on pass ${i + 1}: unreferenced for less than 2 s`);
      }
      await clock.advance(1000);
      await ops.gcIdle();
      assert.equal(existsSync(join(tierDir, key)), false, 'deleted once unreferenced for 2 s');
      assert.match(ops.metricsText(), /^tier_gc_objects_deleted_total\{tier="t"\} 1$/m);
    } finally {
      await ops.stop();
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe('cooldownHoldBack (the engine hook)', () => {
  test('queries the recall log once per policy, with now minus that policy\'s cooldown', async () => {
    const { cooldownHoldBack } = await import('../../src/schedule/cooldown.js');
    const file = pf(`tier t { local "/t" }
fileset f { root "/d" }
policy short on f { cooldown 1h rule r: size > 0 -> release to t }
policy none on f { rule r: size > 0 -> release to t }`);
    const [short, none] = file.policies as [typeof file.policies[0], typeof file.policies[0]];
    const asked: number[] = [];
    const hold = cooldownHoldBack((since) => (asked.push(since), { paths: new Set(['/d/hot']), inodes: new Set() }), 10_000_000);
    assert.equal(hold(short, facts('/d/hot'), short.rules[0]!), true);
    assert.equal(hold(short, facts('/d/cold', { ino: 9 }), short.rules[0]!), false);
    assert.equal(hold(none, facts('/d/hot'), none.rules[0]!), false, 'no cooldown option: never held');
    assert.deepEqual(asked, [10_000_000 - 3_600_000]);
  });
});

describe('DaemonOps.reload (SIGHUP)', () => {
  test('the new policy set replaces the schedules', async () => {
    const state = mkdtempSync(join(tmpdir(), 'tier-ops-'));
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:30Z'));
    const runs: string[] = [];
    const file = (cron: string) => pf(`tier t { local "/t" }\nfileset f { root "/d" }\npolicy p on f { schedule "${cron}" timezone "UTC" rule r: size > 0 -> release to t }`, '/etc/tier/p.hsmpolicy');
    const ops = new DaemonOps({ stateDir: state, log: silentLogger, clock, policies: [file('* * * * *')], runPolicy: async (_f, p) => void runs.push(p) });
    try {
      await ops.start();
      await clock.advance(30_000);
      assert.equal(runs.length, 1);
      ops.reload([file('0 0 1 1 *')]); // once a year
      await clock.advance(10 * 60_000);
      assert.equal(runs.length, 1, 'the every-minute schedule is gone');
      assert.equal(ops.scheduler.status()[0]!.nextRunAt, Date.parse('2027-01-01T00:00:00Z'));
    } finally {
      await ops.stop();
      rmSync(state, { recursive: true, force: true });
    }
  });
});
