import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Catalog, type CatalogRow } from '../../src/engine/catalog.js';
import { parsePolicy } from '../../src/dsl/index.js';
import { buildReport, failures } from '../../src/reports/report.js';
import { formatReport } from '../../src/cli/format/report-format.js';
import { openRecallLog } from '../../src/reports/recall-log.js';

const D = 86_400_000;
const NOW = Date.parse('2026-06-01T00:00:00Z');
const MiB = 1024 * 1024;

function row(ino: number, path: string, state: CatalogRow['state'], size: number, tier: string | null, archivedAgo: number | null): CatalogRow {
  return { dev: 1, ino, path, state, pinned: false, tier, key: tier ? `k${ino}` : null, size, sha256: null, archivedAt: archivedAgo === null ? null : NOW - archivedAgo, updatedAt: NOW };
}

// The known workload: 6 files, exact figures below.
const ROWS = [
  row(1, '/srv/a/v1.mkv', 'released', 100 * MiB, 'cold', 40 * D),
  row(2, '/srv/a/v2.mkv', 'released', 300 * MiB, 'cold', 2 * D),
  row(3, '/srv/a/doc.txt', 'archived', 1000, 'nas', 3_000_000),
  row(4, '/srv/a/big.iso', 'partial', 5 * 1024 * MiB, 'cold', 400 * D),
  row(5, '/srv/b/x.dat', 'dirty', 2 * MiB, 'nas', 10 * D),
  row(6, '/srv/b/pinned', 'resident', 50_000, null, null),
];

describe('tier report (pure)', () => {
  const pf = parsePolicy(
    `tier cold { local "/t/c" }
fileset a { root "/srv/a" }
fileset b { root "/srv/b" }
policy pa on a { rule r: size > 1MiB -> release to cold }
policy pb on b { rule r: size > 1MiB -> archive to cold }`,
    'p.hsmpolicy',
  ).policy!;
  const r = buildReport({
    rows: ROWS,
    runs: [
      { id: 2, policyFile: '/etc/tier/p.hsmpolicy', policy: 'pa', dryRun: false, startedAt: NOW - 60_000, finishedAt: NOW - 30_000, summary: { done: 3, failed: 1 } },
      { id: 1, policyFile: '/etc/tier/p.hsmpolicy', policy: null, dryRun: true, startedAt: NOW - D, finishedAt: null, summary: null },
    ],
    recalls: { recalls: 4, bytes: 123, errors: 1, files: 2 },
    topRecalled: [{ path: '/srv/a/v1.mkv', recalls: 3, bytes: 100, lastAt: NOW - 1000 }],
    policy: pf,
    now: NOW,
  });

  test('totals and per-state figures are exact, every state listed', () => {
    assert.deepEqual(r.totals, { files: 6, bytes: 100 * MiB + 300 * MiB + 1000 + 5 * 1024 * MiB + 2 * MiB + 50_000 });
    assert.deepEqual(r.byState, [
      { label: 'resident', files: 1, bytes: 50_000 },
      { label: 'archived', files: 1, bytes: 1000 },
      { label: 'dirty', files: 1, bytes: 2 * MiB },
      { label: 'released', files: 2, bytes: 400 * MiB },
      { label: 'partial', files: 1, bytes: 5 * 1024 * MiB },
    ]);
  });

  test('per tier (files with a copy) and per policy (files in its fileset)', () => {
    assert.deepEqual(r.byTier, [
      { label: 'cold', files: 3, bytes: 400 * MiB + 5 * 1024 * MiB },
      { label: 'nas', files: 2, bytes: 1000 + 2 * MiB },
    ]);
    assert.deepEqual(r.byPolicy, [
      { label: 'pa', fileset: 'a', files: 4, bytes: 400 * MiB + 1000 + 5 * 1024 * MiB },
      { label: 'pb', fileset: 'b', files: 2, bytes: 2 * MiB + 50_000 },
    ]);
  });

  test('size and archive-age histograms', () => {
    const files = (bs: { label: string; files: number }[]) => Object.fromEntries(bs.filter((b) => b.files).map((b) => [b.label, b.files]));
    assert.deepEqual(files(r.size), { '< 4 KiB': 1, '< 64 KiB': 1, '< 16 MiB': 1, '< 256 MiB': 1, '< 4 GiB': 1, '>= 4 GiB': 1 });
    assert.deepEqual(files(r.archiveAge), { '< 1 h': 1, '< 7 d': 1, '< 30 d': 1, '< 90 d': 1, '>= 1 y': 1, 'never archived': 1 });
  });

  test('runs: duration and outcome from the summary', () => {
    assert.deepEqual(r.lastRuns.map((x) => [x.id, x.outcome, x.durationMs]), [[2, 'failed', 30_000], [1, 'unfinished', null]]);
    assert.equal(failures({ failed: 0, done: 9 }), 0);
    assert.equal(failures({ failures: [{}, {}] }), 2);
    assert.equal(failures({ counts: { failed: 5 } }), 5);
    assert.equal(failures('odd'), 0);
  });

  test('the text view shows the figures', () => {
    const text = formatReport(r).join('\n');
    assert.match(text, /6 managed files/);
    assert.match(text, /released +2 +400\.0 MiB/);
    assert.match(text, /\/srv\/a\/v1\.mkv +3/);
    assert.match(text, /failed/);
  });
});

describe('tier report (CLI, real catalog and recall log)', () => {
  const state = mkdtempSync(join(tmpdir(), 'tier-report-'));
  after(() => rmSync(state, { recursive: true, force: true }));
  const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8' });

  test('no catalog yet: a clear message and exit 1', () => {
    const r = cli('report', '--state-dir', join(state, 'none'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no catalog at .*none\/catalog\.db/);
  });

  test('--json reflects the catalog rows, runs and recall log exactly', () => {
    const cat = new Catalog(join(state, 'catalog.db'));
    for (const r of ROWS) cat.upsert(r);
    const id = cat.startRun('/p.hsmpolicy', 'pa', false, 1000);
    cat.finishRun(id, { done: 2 }, 4000);
    cat.close();
    const log = openRecallLog(state);
    log.record({ time: 10, path: '/srv/a/v1.mkv', bytes: 100, latencyMs: 1 });
    log.record({ time: 20, path: '/srv/a/v1.mkv', bytes: 50, latencyMs: 1 });
    log.record({ time: 30, path: '/srv/a/v2.mkv', bytes: 7, latencyMs: 1 });
    log.record({ time: 40, path: '/srv/a/v2.mkv', bytes: 0, latencyMs: 1, error: 'Timeout' });
    log.close();
    const r = cli('report', '--json', '--state-dir', state);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.totals.files, 6);
    assert.deepEqual(j.byState.find((b: { label: string }) => b.label === 'released'), { label: 'released', files: 2, bytes: 400 * MiB });
    assert.deepEqual(j.recalls, { recalls: 3, bytes: 157, errors: 1, files: 2 });
    assert.deepEqual(j.topRecalled.map((t: { path: string; recalls: number }) => [t.path, t.recalls]), [['/srv/a/v1.mkv', 2], ['/srv/a/v2.mkv', 1]]);
    assert.deepEqual(j.lastRuns.map((x: { policy: string; outcome: string; durationMs: number }) => [x.policy, x.outcome, x.durationMs]), [['pa', 'ok', 3000]]);
    assert.equal(j.byPolicy, null);
  });

  test('text output and a bad --top', () => {
    let r = cli('report', '--state-dir', state);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /by state/);
    r = cli('report', '--state-dir', state, '--top', 'lots');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--top: expected a positive whole number, got "lots"/);
  });
});
