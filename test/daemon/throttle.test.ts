// Rate limits end to end with the real CLI on a loop ext4: a tier with `bwlimit 4MiB`
// holds a 16 MiB release run to the rate (lower bound only), while a reader of an already
// released file started during the run gets its exact bytes before the run ends (recalls
// go first); the wait shows in tier_throttle_wait_seconds_total. Without a daemon,
// `tier apply` archiving to the tier is held to the same rate.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/engine/state-record.js';
import { fetchMetrics } from '../../src/cli/run/metrics-cli.js';
import { pattern, releaseByHand, runCli, startDaemon, writePolicy } from './harness.js';

const MiB = 1024 * 1024;
const stateOf = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE))?.state ?? 'resident';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `cat PATH` as a separate process: what an ordinary reader gets. */
function cat(path: string): Promise<{ code: number | null; out: Buffer; at: number }> {
  const p = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const parts: Buffer[] = [];
  p.stdout.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve) => p.on('close', (code) => resolve({ code, out: Buffer.concat(parts), at: performance.now() })));
}

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('per-tier rate limits in the daemon', () => {
  let fs: LoopFs;
  let stateDir: string;
  let tierDir: string;
  let data: string;

  before(() => {
    fs = mountLoopFs('ext4');
    stateDir = join(fs.scratch, 'state');
    tierDir = join(fs.scratch, 'tier');
    data = join(fs.dir, 'data');
    mkdirSync(data);
    mkdirSync(tierDir);
  });
  after(() => fs?.unmount());

  test('a 16 MiB release run at bwlimit 4MiB takes >= 3 s; a recall started during it returns exact bytes before it ends', async (t) => {
    const dir = join(data, 'run');
    mkdirSync(dir);
    const early = { path: join(dir, 'early.bin'), content: pattern(2 * MiB + 123, 7) };
    writeFileSync(early.path, early.content);
    mkdirSync(stateDir, { recursive: true });
    await releaseByHand(early.path, 'slow', tierDir, stateDir);
    const big = Array.from({ length: 4 }, (_, i) => ({ path: join(dir, `big${i}.bin`), content: pattern(4 * MiB, 20 + i) }));
    for (const f of big) writeFileSync(f.path, f.content);
    const policy = writePolicy(fs.scratch, dir, tierDir, 'size > 0B -> release to slow', 'bwlimit 4MiB', 'run.hsmpolicy');

    const d = startDaemon([policy], stateDir);
    try {
      await d.ready;
      assert.equal(stateOf(early.path), 'released');
      const t0 = performance.now();
      const run = runCli(['apply', policy, '--state-dir', stateDir]).then((r) => ({ ...r, at: performance.now() }));
      // Start reading once the run is being held back: the burst is spent, the bucket is empty.
      while (metricValue(await fetchMetrics(stateDir), 'tier_throttle_wait_seconds_total', 'tier="slow",class="batch"') === 0) await sleep(50);
      const catAt = performance.now();
      const reader = await cat(early.path);
      const r = await run;
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const runS = (r.at - t0) / 1000;
      // 16 MiB at 4 MiB/s with a 4 MiB burst, plus the recall's 2 MiB from the same budget.
      assert.ok(runS >= 3, `the run took ${runS.toFixed(2)} s, under what the limit allows`);
      assert.equal(reader.code, 0);
      assert.equal(reader.out.length, early.content.length);
      assert.equal(sha(reader.out), sha(early.content), 'the reader got the exact bytes');
      assert.ok(reader.at < r.at, `the recall finished ${((reader.at - r.at) / 1000).toFixed(2)} s after the run`);
      for (const f of big) {
        assert.equal(stateOf(f.path), 'released', f.path);
        assert.ok(statSync(f.path).blocks * 512 <= 4096);
      }
      const text = await fetchMetrics(stateDir);
      const batchWait = metricValue(text, 'tier_throttle_wait_seconds_total', 'tier="slow",class="batch"');
      assert.ok(batchWait > 1, `batch waited ${batchWait} s in total`);
      assert.match(text, /^# TYPE tier_throttle_wait_seconds_total counter$/m);
      const interWait = metricValue(text, 'tier_throttle_wait_seconds_total', 'tier="slow",class="interactive"');
      assert.ok(interWait > 0, 'the recall went through the same limiter');
      t.diagnostic(`run ${runS.toFixed(2)} s; cat of 2 MiB during it ${((reader.at - catAt) / 1000).toFixed(2)} s; waits: batch ${batchWait.toFixed(2)} s, interactive ${interWait.toFixed(2)} s`);
      // Released files read back whole and exact after the run.
      for (const f of big) assert.equal(sha((await cat(f.path)).out), sha(f.content));
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  });

  test('SIGHUP with the limit lifted lets a run held back by bwlimit 1KiB finish at once', async () => {
    const dir = join(data, 'hup');
    mkdirSync(dir);
    const f = { path: join(dir, 'f.bin'), content: pattern(256 * 1024, 60) };
    writeFileSync(f.path, f.content);
    const hupState = join(fs.scratch, 'hup-state');
    // At 1 KiB/s this release would take over 4 minutes.
    const policy = writePolicy(fs.scratch, dir, tierDir, 'size > 0B -> release to slow', 'bwlimit 1KiB', 'hup.hsmpolicy');
    const d = startDaemon([policy], hupState);
    try {
      await d.ready;
      const run = runCli(['apply', policy, '--state-dir', hupState]);
      while (metricValue(await fetchMetrics(hupState), 'tier_throttle_wait_seconds_total', 'tier="slow",class="batch"') === 0) await sleep(50);
      writePolicy(fs.scratch, dir, tierDir, 'size > 0B -> release to slow', '', 'hup.hsmpolicy');
      d.proc.kill('SIGHUP');
      await d.waitLog((l) => l.msg === 'policies reloaded');
      const r = await Promise.race([run, sleep(30_000).then(() => null)]);
      assert.ok(r, 'the run was still held back 30 s after the reload');
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(stateOf(f.path), 'released');
      assert.equal(sha((await cat(f.path)).out), sha(f.content));
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  });

  test('without a daemon, `tier apply` archiving 12 MiB to a bwlimit 4MiB tier takes >= 2 s', async (t) => {
    const dir = join(data, 'cli');
    mkdirSync(dir);
    const files = Array.from({ length: 3 }, (_, i) => ({ path: join(dir, `a${i}.bin`), content: pattern(4 * MiB, 40 + i) }));
    for (const f of files) writeFileSync(f.path, f.content);
    const policy = writePolicy(fs.scratch, dir, tierDir, 'size > 0B -> archive to slow', 'bwlimit 4MiB', 'cli.hsmpolicy');
    const cliState = join(fs.scratch, 'cli-state');
    const t0 = performance.now();
    const r = await runCli(['apply', policy, '--state-dir', cliState]);
    const s = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(s >= 2, `took ${s.toFixed(2)} s`);
    t.diagnostic(`tier apply (no daemon) took ${s.toFixed(2)} s`);
    for (const f of files) assert.equal(stateOf(f.path), 'archived');
  });
});
