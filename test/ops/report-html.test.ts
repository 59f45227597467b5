// The report page and its series, pure: bucket choice, the filled timeline, filesystems
// against watermarks, and the page itself (self-contained, escaped, figures in data-
// attributes). The browser test (report-html-browser.test.ts) renders a real daemon's page.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '../../src/dsl/index.js';
import { Catalog } from '../../src/engine/catalog.js';
import { buildReport } from '../../src/reports/report.js';
import { formatReport } from '../../src/cli/format/report-format.js';
import { chooseBucket, fillTimeline, filesystemViews } from '../../src/reports/report-series.js';
import { renderReportHtml } from '../../src/cli/format/report-html/page.js';
import { RecallLog } from '../../src/reports/recall-log.js';

const MIN = 60_000;
const NOW = Date.parse('2026-06-01T12:00:00Z');

describe('report series', () => {
  test('bucket width: the narrowest step that keeps the timeline under 60 columns', () => {
    assert.equal(chooseBucket(0), MIN);
    assert.equal(chooseBucket(59 * MIN), MIN);
    assert.equal(chooseBucket(60 * MIN), 5 * MIN);
    assert.equal(chooseBucket(3 * 86_400_000), 6 * 3_600_000);
    assert.equal(chooseBucket(10 * 365 * 86_400_000), 7 * 86_400_000);
  });

  test('the timeline fills empty buckets with zeros from the first recall to now', () => {
    const rows = [
      { at: NOW - 3 * MIN, recalls: 2, errors: 0, bytes: 10, latencyAvgMs: 1, latencyMaxMs: 2 },
      { at: NOW - MIN, recalls: 0, errors: 1, bytes: 0, latencyAvgMs: 5, latencyMaxMs: 5 },
    ];
    const t = fillTimeline(rows, MIN, NOW - 3 * MIN + 5, NOW + 30_000);
    assert.deepEqual(t.points.map((p) => [p.at - NOW, p.recalls, p.errors]), [[-3 * MIN, 2, 0], [-2 * MIN, 0, 0], [-MIN, 0, 1], [0, 0, 0]]);
  });

  const state = mkdtempSync(join(tmpdir(), 'tier-series-'));
  after(() => rmSync(state, { recursive: true, force: true }));
  test('the recall log groups by bucket: counts, failed apart, bytes of good ones, latency of all', () => {
    const log = new RecallLog(join(state, 'r.db'));
    log.record({ time: NOW - 90_000, path: '/a', bytes: 100, latencyMs: 2 });
    log.record({ time: NOW - 70_000, path: '/a', bytes: 50, latencyMs: 4 });
    log.record({ time: NOW - 10_000, path: '/b', bytes: 9, latencyMs: 9, error: 'Timeout' });
    assert.equal(log.firstAt(), NOW - 90_000);
    assert.deepEqual(log.timeline(0, MIN), [
      { at: NOW - 2 * MIN, recalls: 2, errors: 0, bytes: 150, latencyAvgMs: 3, latencyMaxMs: 4 },
      { at: NOW - MIN, recalls: 0, errors: 1, bytes: 0, latencyAvgMs: 9, latencyMaxMs: 9 },
    ]);
    log.close();
  });

  test('filesystems: one per fileset (backing first), with the watermarks of its policies', () => {
    const pf = parsePolicy(
      `tier t { local "/t" }
fileset a { root "/srv/a" backing "/b/a" }
fileset b { root "/srv/b" }
policy pa on a { when usage > 90% until usage < 80% rule r: size > 0B -> release to t }
policy pb on b { rule r: size > 0B -> archive to t }`,
      'p.hsmpolicy',
    ).policy!;
    const usage = new Map<string, { percent: number; usedBytes: number; totalBytes: number } | Error>([
      ['/b/a', { percent: 50, usedBytes: 5, totalBytes: 10 }],
      ['/srv/b', new Error('statfs /srv/b: ENOENT')],
    ]);
    assert.deepEqual(filesystemViews(pf, usage), [
      { fileset: 'a', path: '/b/a', usage: { percent: 50, usedBytes: 5, totalBytes: 10 }, marks: [{ policy: 'pa', high: 90, low: 80 }] },
      { fileset: 'b', path: '/srv/b', usage: null, error: 'statfs /srv/b: ENOENT', marks: [] },
    ]);
  });
});

describe('report page (pure)', () => {
  const evil = '/srv/a/<script>alert(1)</script>"&.mkv';
  const r = buildReport({
    rows: [
      { dev: 1, ino: 1, path: evil, state: 'released', pinned: false, tier: 'cold', key: 'k', size: 5_000_000, sha256: null, archivedAt: NOW - 1000, updatedAt: NOW },
      { dev: 1, ino: 2, path: '/srv/a/x', state: 'resident', pinned: false, tier: null, key: null, size: 10, sha256: null, archivedAt: null, updatedAt: NOW },
    ],
    runs: [{ id: 7, policyFile: '/p', policy: 'pa', dryRun: false, startedAt: NOW - 5000, finishedAt: NOW - 1000, summary: { done: 1, failed: 0, uploaded: 5_000_000, freed: 4_999_488 } }],
    recalls: { recalls: 3, bytes: 4096, errors: 1, files: 1 },
    topRecalled: [{ path: evil, recalls: 3, bytes: 4096, lastAt: NOW - 2000 }],
    recallTimeline: fillTimeline([{ at: NOW - MIN, recalls: 3, errors: 1, bytes: 4096, latencyAvgMs: 1.5, latencyMaxMs: 3 }], MIN, NOW - MIN, NOW),
    filesystems: [{ fileset: 'a', path: '/srv/a', usage: { percent: 42.5, usedBytes: 425, totalBytes: 1000 }, marks: [{ policy: 'pa', high: 90, low: 80 }] }],
    now: NOW,
  });
  const html = renderReportHtml(r);

  test('self-contained: no script, no external reference, a CSP that forbids loading anything', () => {
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /https?:\/\//);
    assert.doesNotMatch(html, /\s(src|href)=/i);
    assert.doesNotMatch(html, /@import|@font-face/);
    for (const m of html.matchAll(/url\(([^)]*)\)/g)) assert.match(m[1]!, /^#p-[a-z]+$/, m[0]);
    assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">/);
  });

  test('paths are escaped', () => {
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;.mkv'));
    assert.ok(!html.includes(evil));
  });

  test('figures sit in data- attributes and in text beside the charts', () => {
    assert.match(html, /data-figure="totals" data-files="2" data-bytes="5000010"/);
    assert.match(html, /<g class="bar" data-label="released" data-files="1" data-bytes="5000000">/);
    assert.match(html, /<g class="pair" data-id="7" data-policy="pa" data-outcome="ok" data-moved="5000000" data-freed="4999488"/);
    assert.match(html, /data-recalls="3" data-errors="1" data-bytes="4096" data-latency-avg-ms="1.5" data-latency-max-ms="3"/);
    assert.match(html, /data-percent="42.5" data-used-bytes="425" data-total-bytes="1000" data-high0="90" data-low0="80"/);
    assert.match(html, /1 file, 4.77 MiB/);
    assert.match(html, /42.5% used/);
    assert.match(html, /pa: runs above 90%/);
  });

  test('the text view lists the filesystems against their watermarks too', () => {
    assert.match(formatReport(r).join('\n'), /a \/srv\/a: 42\.5% used \(425 B of 1000 B\); pa above 90% until below 80%/);
  });

  test('without --config the page says how to get the filesystem figures', () => {
    const bare = renderReportHtml({ ...r, filesystems: null });
    assert.match(bare, /data-none="no-config"/);
  });
});

describe('tier report --html (CLI)', () => {
  const state = mkdtempSync(join(tmpdir(), 'tier-report-html-'));
  after(() => rmSync(state, { recursive: true, force: true }));
  const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8' });

  test('writes the page and says where; an unwritable place is a clear error, no stack', () => {
    const cat = new Catalog(join(state, 'catalog.db'));
    cat.upsert({ dev: 1, ino: 1, path: '/srv/a/v.mkv', state: 'released', pinned: false, tier: 'cold', key: 'k1', size: 1234, sha256: null, archivedAt: Date.now() - 1000, updatedAt: Date.now() });
    cat.close();
    const page = join(state, 'r.html');
    let r = cli('report', '--html', page, '--state-dir', state);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `report page written to ${page}`);
    const html = readFileSync(page, 'utf8');
    assert.match(html, /<g class="bar" data-label="released" data-files="1" data-bytes="1234">/);
    assert.deepEqual(readdirSync(state).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');
    r = cli('report', '--html', join(state, 'no/such/dir/r.html'), '--state-dir', state);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /report --html .*no\/such\/dir\/r\.html: ENOENT/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
