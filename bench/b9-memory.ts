// Issue 14 item 4: the daemon's memory with 0, N/5 and N released files (filesystem mark).
// The real daemon (built CLI) on a loop ext4, one fileset per size (each its own root and
// catalog; bench/b9-marks.ts makes the released files), each life measured the same way:
// start, `ready`, the start-up reconcile pass (it walks every file of the root and is the
// daemon's largest allocation: FileFacts per file, catalog rows, walk threads), a few
// seconds, then the RSS of supervisor + worker. Per life: time to ready, the worker's VmRSS
// split (anon / file), the supervisor's VmRSS, and the worker's own view (GET /metrics: V8
// heap used and total, new space). At N, two more passes (`tier reconcile`) after that: the
// worker's RSS after each, a bound and not a leak. Two rounds, smaller sizes first in each;
// one JSON line per life, then RSS(N) / RSS(0) and RSS(N) / RSS(N/5) ("flat": <= 1.2).
//   node --import tsx bench/b9-memory.ts [N]     (default 100000; `npm run build` first)
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fetchMetrics } from '../src/cli/run/metrics-cli.js';
import { makeReleased, startDaemon } from './b9-marks.js';
import { REPO } from './lib/setup.js';
import { fmtBytes, fmtMs, loadavg, log, nowMs, sh, unmountAndRemove } from './lib/util.js';

const n = Number(process.argv[2] ?? 100_000);
const sizes = [0, Math.round(n / 5), n];

function status(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(VmRSS|RssAnon|RssFile|VmHWM):\s+(\d+) kB/.exec(l);
    if (m) out[m[1]!] = Number(m[2]) * 1024;
  }
  return out;
}

function metric(text: string, name: string, label = ''): number {
  return Number(new RegExp(`^${name}(?:\\{${label}[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

const mib = (b: number) => Math.round(b / 1048576);

interface Life {
  released: number;
  readyMs: number;
  passMs: number;
  rssTotal: number;
}

async function life(policy: string, stateDir: string, released: number, morePasses: number): Promise<Life> {
  const t0 = nowMs();
  const d = startDaemon(policy, stateDir, { ...process.env, TIER_MARKS: '' });
  try {
    await d.ready;
    const readyMs = nowMs() - t0;
    await Promise.race([d.reconcileDone, new Promise((r) => setTimeout(r, 600_000))]);
    const passMs = nowMs() - t0 - readyMs;
    await new Promise((r) => setTimeout(r, 3000));
    const sup = d.proc.pid!;
    // The worker: the supervisor's child running worker/main (the supervisor may run short-lived helpers).
    const kids = readFileSync(`/proc/${sup}/task/${sup}/children`, 'utf8').trim().split(/\s+/).map(Number);
    const worker = kids.find((p) => /worker/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8'))) ?? kids[0]!;
    const w = status(worker);
    const s = status(sup);
    const m = await fetchMetrics(stateDir);
    const again: number[] = [];
    for (let i = 0; i < morePasses; i++) {
      sh(process.execPath, [join(REPO, 'bin/tier.js'), 'reconcile', '--state-dir', stateDir]);
      await new Promise((r) => setTimeout(r, 3000));
      again.push(mib(status(worker).VmRSS!));
    }
    const out = {
      released,
      readyMs: Math.round(readyMs),
      passMs: Math.round(passMs),
      rssTotal: w.VmRSS! + s.VmRSS!,
    };
    console.log(
      JSON.stringify({
        ...out,
        workerMiB: { rss: mib(w.VmRSS!), anon: mib(w.RssAnon!), file: mib(w.RssFile!), hwm: mib(w.VmHWM!) },
        supervisorMiB: mib(s.VmRSS!),
        heapMiB: { used: mib(metric(m, 'nodejs_heap_size_used_bytes')), total: mib(metric(m, 'nodejs_heap_size_total_bytes')), newSpace: mib(metric(m, 'nodejs_heap_space_size_total_bytes', 'space="new"')) },
        ...(morePasses ? { workerRssMiBAfterMorePasses: again } : {}),
        load: loadavg(),
      }),
    );
    return out;
  } finally {
    d.proc.kill('SIGTERM');
    await d.exited;
  }
}

const base = mkdtempSync('/var/tmp/tier-bench9m-');
const img = join(base, 'fs.img');
const mnt = join(base, 'mnt');
mkdirSync(mnt);
const total = sizes.reduce((a, b) => a + b, 0);
sh('truncate', ['-s', `${512 + Math.ceil(total / 1000)}M`, img]);
sh('mkfs.ext4', ['-q', '-F', '-I', '512', '-N', String(total + 10_000), img]);
sh('mount', ['-o', 'loop', img, mnt]);
try {
  mkdirSync(join(base, 'tier'));
  const sets = sizes.map((size) => {
    const data = join(mnt, `data${size}`);
    const stateDir = join(base, `state${size}`);
    mkdirSync(join(data, 'rel'), { recursive: true });
    mkdirSync(stateDir);
    const policy = join(base, `b9-${size}.hsmpolicy`);
    writeFileSync(policy, `tier slow { local "${join(base, 'tier')}" }\nfileset data { root "${data}" }\npolicy p on data {\n  rule none: name ~ "__never__" -> keep\n}\n`);
    if (size > 0) makeReleased(join(data, 'rel'), size, stateDir);
    return { size, policy, stateDir };
  });
  log(`9m: filesets of ${sizes.join(', ')} released files made (load ${loadavg()})`);
  const runs: Life[] = [];
  for (let round = 0; round < 2; round++) {
    // The first life at each size writes the rows' file handles (makeReleased leaves none): round 2 is the steady state.
    for (const s of sets) runs.push(await life(s.policy, s.stateDir, s.size, round === 1 && s.size === n ? 2 : 0));
  }
  const last = (size: number) => runs.filter((r) => r.released === size).pop()!;
  const [r0, r1, r2] = sizes.map(last) as [Life, Life, Life];
  log(
    `9m: daemon RSS after the start-up pass (round 2): ${sizes.map((s, i) => `${fmtBytes([r0, r1, r2][i]!.rssTotal)} at ${s}`).join(', ')}; ` +
      `ratio ${n} / 0: ${(r2.rssTotal / r0.rssTotal).toFixed(3)}, ${n} / ${sizes[1]}: ${(r2.rssTotal / r1.rssTotal).toFixed(3)}; ` +
      `ready ${sizes.map((s, i) => `${fmtMs([r0, r1, r2][i]!.readyMs)} at ${s}`).join(', ')} (load ${loadavg()})`,
  );
} finally {
  unmountAndRemove(mnt, base);
}
