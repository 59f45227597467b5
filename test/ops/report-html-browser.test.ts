// Issue 17 end to end: a real daemon on loop ext4 releases files, readers recall some of
// them, then `tier report --html` draws the catalog and recall log and Debian's headless
// Chromium renders the page: no console message (the page has no script, so any message
// is a blocked load or an error), a screenshot in the test output dir (TIER_TEST_OUT,
// default test-output/), and every figure the DOM carries equals `tier report --json`.
// The same daemon's /metrics is checked against packaging/grafana/tier.json.
// Skipped, saying so, only when chromium is not installed (scripts/setup.sh installs it).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { checkDashboard } from '../helpers/grafana.js';
import { applyActions, getMetrics, pattern, readAt, REPO, runCli, startDaemon, type DaemonProc } from '../helpers/daemon.js';
import { recallLogPath } from '../../src/reports/recall-log.js';
import { openSqlite } from '../../src/record/sqlite.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const OUT = process.env.TIER_TEST_OUT ?? join(REPO, 'test-output');
const CHROMIUM = ['chromium', 'chromium-browser'].map(which).find((p) => p !== null) ?? null;
const NO_CHROMIUM = CHROMIUM ? false : 'chromium is not installed (apt-get install chromium; scripts/setup.sh does): the page was not rendered in a browser';

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Headless Chromium on a file; returns its stdout and the console messages it logged. */
function chromium(file: string, args: string[]): { stdout: string; console: string[]; stderr: string } {
  const profile = mkdtempSync(join(tmpdir(), 'tier-chromium-'));
  try {
    const r = spawnSync(
      CHROMIUM!,
      ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0', ...args, `file://${file}`],
      { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 * MiB },
    );
    assert.equal(r.status, 0, `chromium ${args.join(' ')}: exit ${r.status ?? r.signal}\n${r.stderr}`);
    return { stdout: r.stdout, console: r.stderr.split('\n').filter((l) => /:CONSOLE[:(]/.test(l)), stderr: r.stderr };
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

function unescapeAttr(v: string): string {
  return v.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

function attrs(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/data-([a-z0-9-]+)="([^"]*)"/g)) out[m[1]!.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())] = unescapeAttr(m[2]!);
  return out;
}

/** The data- attributes of every `<g class="KIND">` inside the svg of one figure, in order. */
function figure(dom: string, name: string, kind: string): Record<string, string>[] {
  const svgs = [...dom.matchAll(/<svg[^>]*data-figure="([^"]*)"[^>]*>([\s\S]*?)<\/svg>/g)].filter((m) => m[1] === name);
  assert.ok(svgs.length > 0, `figure ${name} on the page`);
  return svgs.flatMap((s) => [...s[2]!.matchAll(new RegExp(`<g class="${kind}"[^>]*>`, 'g'))].map((m) => attrs(m[0])));
}

const num = (o: Record<string, string>, keys: string[]) => Object.fromEntries(keys.map((k) => [k, o[k] === '' ? null : Number(o[k])]));

describe('tier report --html in a real browser, from a real daemon run', () => {
  let fs: LoopFs;
  let d: DaemonProc | undefined;
  let stateDir: string;
  let policy: string;
  let page: string;
  let report: any; // the --json printed by the invocation that wrote the page
  let metrics: string;

  before(async () => {
    mkdirSync(OUT, { recursive: true });
    page = join(OUT, 'report.html');
    fs = mountLoopFs('ext4', 64);
    const data = join(fs.dir, 'data');
    const tierDir = join(fs.scratch, 'tier');
    stateDir = join(fs.scratch, 'state');
    mkdirSync(join(data, 'videos'), { recursive: true });
    mkdirSync(join(data, 'logs'));
    mkdirSync(tierDir);
    policy = join(fs.scratch, 'site.hsmpolicy');
    writeFileSync(
      policy,
      `tier slow { local "${tierDir}" chunk 1MiB readahead 1MiB }\n` +
        `fileset data { root "${data}" }\n` +
        `policy tidy on data {\n  rule small: size < 4KiB -> keep\n  rule logs: name ~ "*.log" -> archive to slow\n  rule rest: size >= 4KiB -> release to slow\n}\n` +
        `policy guard on data {\n  when usage > 95% until usage < 85%\n  rule all: size >= 0B -> release to slow\n}\n`,
    );
    const files: [string, number][] = [
      ['videos/a.mkv', 6 * MiB],
      ['videos/b.mkv', 3 * MiB],
      ['videos/c.mkv', 1 * MiB],
      ['doc.pdf', 200 * KiB],
      ['logs/app.log', 300 * KiB],
      ['notes.txt', 100],
    ];
    files.forEach(([p, size], i) => writeFileSync(join(data, p), pattern(size, 700 + i)));
    const t0 = Date.now();
    const lap = (what: string) => process.env.TIER_TEST_TIMING && console.log(`${what}: ${Date.now() - t0} ms`);
    d = startDaemon([policy], stateDir);
    await d.ready;
    lap('ready');
    const acts = await applyActions(policy, stateDir);
    assert.equal(acts.get('videos/a.mkv')?.status, 'done', JSON.stringify([...acts]));
    lap('applied');
    // Recalls: a few bytes here and there, one file whole.
    await readAt(join(data, 'videos/a.mkv'), 0, 64);
    await readAt(join(data, 'videos/a.mkv'), 5 * MiB, 64);
    await readAt(join(data, 'doc.pdf'), 0, 10);
    assert.equal(readFileSync(join(data, 'videos/c.mkv')).length, 1 * MiB);
    await readAt(join(data, 'videos/a.mkv'), 3 * MiB, 64);
    // The daemon flushes its recall log every second: wait for the rows (read-only, in this process).
    for (let i = 0; ; i++) {
      const log = existsSync(recallLogPath(stateDir)) ? openSqlite(recallLogPath(stateDir), { readonly: true }) : null;
      const n = (log?.prepare('SELECT COUNT(*) AS n FROM recalls').get() as { n: number } | undefined)?.n ?? 0;
      log?.close();
      if (n >= 4) break;
      if (i > 300) throw new Error(`recalls never reached the log (${n})`);
      await sleep(100);
    }
    lap('recalls logged');
    metrics = await getMetrics(stateDir);
    const r = await runCli(['report', '--json', '--html', page, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.stderr);
    report = JSON.parse(r.stdout);
    lap('reported');
  });

  after(async () => {
    if (d) await d.stop();
    fs?.unmount();
  });

  test("the daemon's /metrics has every series the Grafana dashboard asks for, per-tier states included", () => {
    assert.deepEqual(checkDashboard(metrics), []);
    assert.match(metrics, /^tier_tier_bytes\{tier="slow",state="released"\} \d+/m);
    assert.match(metrics, /^tier_tier_files\{tier="slow",state="archived"\} 1$/m);
  });

  test('the report has what the page draws: states, tiers, recalls over time, runs, the watermark', () => {
    assert.equal(report.totals.files, 5); // notes.txt is kept: no record, no catalog row
    assert.ok(report.byState.find((b: any) => b.label === 'released').files >= 3);
    assert.deepEqual(report.byTier.map((b: any) => b.label), ['slow']);
    assert.ok(report.recallTimeline.points.some((p: any) => p.recalls > 0));
    assert.ok(report.lastRuns[0].moved > 10 * MiB && report.lastRuns[0].freed > 0, JSON.stringify(report.lastRuns[0]));
    assert.deepEqual(report.filesystems[0].marks, [{ policy: 'guard', high: 95, low: 85 }]);
    assert.ok(report.filesystems[0].usage.totalBytes > 30 * MiB);
  });

  test('Chromium renders it without a console message, the figures match --json, a screenshot is written', { skip: NO_CHROMIUM }, (t) => {
    const dom = chromium(page, ['--dump-dom']);
    assert.deepEqual(dom.console, [], dom.stderr);
    assert.match(dom.stdout, /<h1>tier report<\/h1>/);

    const totals = attrs(/<p[^>]*data-figure="totals"[^>]*>/.exec(dom.stdout)![0]);
    assert.deepEqual(num(totals, ['files', 'bytes', 'generatedAt']), { files: report.totals.files, bytes: report.totals.bytes, generatedAt: report.generatedAt });
    for (const f of ['byState', 'byTier', 'size', 'archiveAge']) {
      const bars = figure(dom.stdout, f, 'bar').map((b) => ({ label: b.label, ...num(b, ['files', 'bytes']) }));
      assert.deepEqual(bars, report[f], f);
    }
    assert.deepEqual(
      figure(dom.stdout, 'topRecalled', 'bar').map((b) => ({ path: b.path, ...num(b, ['recalls', 'bytes', 'lastAt']) })),
      report.topRecalled,
    );
    assert.deepEqual(
      figure(dom.stdout, 'recallTimeline', 'point').map((p) => num(p, ['at', 'recalls', 'errors', 'bytes', 'latencyAvgMs', 'latencyMaxMs'])),
      report.recallTimeline.points,
    );
    assert.deepEqual(
      figure(dom.stdout, 'lastRuns', 'pair').map((p) => ({ id: Number(p.id), policy: p.policy, outcome: p.outcome, ...num(p, ['moved', 'freed']) })),
      report.lastRuns.map((x: any) => ({ id: x.id, policy: x.policy ?? '', outcome: x.outcome, moved: x.moved, freed: x.freed })),
    );
    const fsv = figure(dom.stdout, 'filesystems', 'usage');
    assert.deepEqual(
      fsv.map((u) => ({ fileset: u.fileset, ...num(u, ['percent', 'usedBytes', 'totalBytes', 'high0', 'low0']) })),
      report.filesystems.map((f: any) => ({ fileset: f.fileset, ...f.usage, high0: f.marks[0].high, low0: f.marks[0].low })),
    );

    const png = join(OUT, 'report.png');
    rmSync(png, { force: true });
    const shot = chromium(page, ['--window-size=1000,2200', `--screenshot=${png}`]);
    assert.deepEqual(shot.console, [], shot.stderr);
    assert.ok(existsSync(png), 'screenshot written');
    assert.deepEqual([...readFileSync(png).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    assert.ok(statSync(png).size > 20 * KiB, `a screenshot with content (${statSync(png).size} bytes)`);
    t.diagnostic(`page ${page}, screenshot ${png}`);
  });

  test('the console check sees a page that tries to load from the network (the check can fail)', { skip: NO_CHROMIUM }, () => {
    const bad = join(OUT, 'bad-page.html');
    const html = readFileSync(page, 'utf8').replace('</body>', '<img src="http://192.0.2.1/x.png" alt=""></body>');
    writeFileSync(bad, html);
    try {
      const r = chromium(bad, ['--dump-dom']);
      assert.equal(r.console.length, 1, r.console.join('\n'));
      assert.match(r.console[0]!, /Content Security Policy/);
    } finally {
      rmSync(bad, { force: true });
    }
  });
});
