// Issue 14 item 4: where the daemon's memory goes with N released files (filesystem mark).
// The real daemon (built CLI) on a loop ext4 with N released files (bench/b9-marks.ts makes
// them), started with its catalog (N rows) and with an empty one, without reconcile passes
// (`--reconcile-interval 0`: what the released files cost as such), then with its catalog
// and the start-up reconcile pass (it walks every file, released or not), measured once
// the pass is over. Per daemon: time to ready, the worker's VmRSS split (anon / file /
// shmem), the supervisor's VmRSS, and the worker's own view (GET /metrics: V8 heap used and
// total, external memory); with the pass, the worker's RSS after two more passes (`tier
// reconcile`): a bound, not a leak. Prints one JSON line per daemon life, then the ratios.
//   node --import tsx bench/b9-memory.ts [N]     (default 100000)
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fetchMetrics } from '../src/cli/run/metrics-cli.js';
import { makeReleased, startDaemon } from './b9-marks.js';
import { REPO } from './lib/setup.js';
import { fmtBytes, loadavg, log, nowMs, sh, unmountAndRemove } from './lib/util.js';

const n = Number(process.argv[2] ?? 100_000);

function status(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(VmRSS|RssAnon|RssFile|RssShmem|VmHWM):\s+(\d+) kB/.exec(l);
    if (m) out[m[1]!] = Number(m[2]) * 1024;
  }
  return out;
}

function metric(text: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

async function life(policy: string, stateDir: string, label: string, reconcile: boolean): Promise<Record<string, unknown> & { rssTotal: number; label: string }> {
  const t0 = nowMs();
  const d = startDaemon(policy, stateDir, { ...process.env, TIER_MARKS: '' }, reconcile ? [] : ['--reconcile-interval', '0']);
  try {
    await d.ready;
    const readyMs = nowMs() - t0;
    if (reconcile) await Promise.race([d.reconcileDone, new Promise((r) => setTimeout(r, 600_000))]);
    const settledMs = nowMs() - t0;
    await new Promise((r) => setTimeout(r, 2000));
    const sup = d.proc.pid!;
    const worker = Number(readFileSync(`/proc/${sup}/task/${sup}/children`, 'utf8').trim().split(/\s+/)[0]);
    // Bounded, not leaking: two more passes (`tier reconcile`, through the daemon), the worker's RSS after each.
    const again: number[] = [];
    if (reconcile) {
      for (let i = 0; i < 2; i++) {
        sh(process.execPath, [join(REPO, 'bin/tier.js'), 'reconcile', '--state-dir', stateDir]);
        await new Promise((r) => setTimeout(r, 2000));
        again.push(status(worker).VmRSS!);
      }
    }
    const m = await fetchMetrics(stateDir);
    const w = status(worker);
    const s = status(sup);
    return {
      ...(reconcile ? { workerRssAfterMorePasses: again } : {}),
      label,
      readyMs: Math.round(readyMs),
      settledMs: Math.round(settledMs),
      rssTotal: w.VmRSS! + s.VmRSS!,
      worker: w,
      supervisor: s.VmRSS,
      heapUsed: metric(m, 'nodejs_heap_size_used_bytes'),
      heapTotal: metric(m, 'nodejs_heap_size_total_bytes'),
      external: metric(m, 'nodejs_external_memory_bytes'),
      load: loadavg(),
    };
  } finally {
    d.proc.kill('SIGTERM');
    await d.exited;
  }
}

const base = mkdtempSync('/var/tmp/tier-bench9m-');
const img = join(base, 'fs.img');
const mnt = join(base, 'mnt');
mkdirSync(mnt);
sh('truncate', ['-s', `${512 + Math.ceil(n / 1000)}M`, img]);
sh('mkfs.ext4', ['-q', '-F', '-I', '512', '-N', String(n + 10_000), img]);
sh('mount', ['-o', 'loop', img, mnt]);
try {
  const data = join(mnt, 'data');
  const rel = join(data, 'rel');
  const stateDir = join(base, 'state');
  const empty = join(base, 'state-empty');
  for (const x of [rel, stateDir, empty, join(base, 'tier')]) mkdirSync(x, { recursive: true });
  const policy = join(base, 'b9.hsmpolicy');
  writeFileSync(policy, `tier slow { local "${join(base, 'tier')}" }\nfileset data { root "${data}" }\npolicy p on data {\n  rule none: name ~ "__never__" -> keep\n}\n`);
  log(`9m: ${n} released files (load ${loadavg()})`);
  makeReleased(rel, n, stateDir);
  const runs: Awaited<ReturnType<typeof life>>[] = [];
  for (let i = 0; i < 2; i++) {
    for (const [label, dir, reconcile] of [['catalog', stateDir, false], ['empty', empty, false], ['catalog+reconcile', stateDir, true]] as const) {
      const r = await life(policy, dir, label, reconcile);
      console.log(JSON.stringify(r));
      runs.push(r);
    }
  }
  const min = (l: string) => Math.min(...runs.filter((r) => r.label === l).map((r) => r.rssTotal));
  log(
    `9m: RSS ${fmtBytes(min('catalog'))} with ${n} released files vs ${fmtBytes(min('empty'))} with none (ratio ${(min('catalog') / min('empty')).toFixed(3)}); ` +
      `after the start-up reconcile pass ${fmtBytes(min('catalog+reconcile'))} (ratio ${(min('catalog+reconcile') / min('empty')).toFixed(3)}) (load ${loadavg()})`,
  );
} finally {
  unmountAndRemove(mnt, base);
}
