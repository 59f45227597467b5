// 5. Handler round trip: 4 KiB preads (bench/preader.c, random pages inside the first MiB)
// on a partial file whose ranges are resident: tier's Node handler (the daemon answers from
// its resident map) vs bench/c-handler.c (a bare fanotify pre-content handler that answers
// FAN_ALLOW at once) on a plain file of the same size. Goal: within 2x (median pread).
// The daemon's event counter must grow by one per pread (else we measured no round trip).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Ctx } from './lib/context.js';
import { bytesFetched, recallEvents, recordOf, release, writeRandomFile, type World } from './lib/setup.js';
import { fmtBytes, loadavg, log, median, MiB, nowMs, settle, sh, type Result } from './lib/util.js';

const N = 20_000;
const SPAN = 1 * MiB;

/**
 * Where reader and handler run: the scheduler's choice; both on CPU 0; reader on CPU 0 and
 * handler on CPU 1 (every wake-up crosses vCPUs: the worst case "free" can land in).
 */
type Place = 'free' | 'pinned' | 'crossed';
const readerCpu = (p: Place): string | null => (p === 'free' ? null : '0');
const handlerCpu = (p: Place): string | null => (p === 'free' ? null : p === 'pinned' ? '0' : '1');

/** Runs the reader, placed as `place` says (taskset). Microseconds per pread. */
function preads(ctx: Ctx, file: string, place: Place = 'free'): { median: number; mean: number; p99: number } {
  const cmd = [join(ctx.cbin, 'preader'), file, String(N), String(SPAN)];
  const cpu = readerCpu(place);
  const out = cpu ? sh('taskset', ['-c', cpu, ...cmd]) : sh(cmd[0]!, cmd.slice(1));
  const [m, mean, p99] = out.trim().split(' ').map(Number);
  return { median: m! / 1000, mean: mean! / 1000, p99: p99! / 1000 };
}

async function withCHandler<T>(ctx: Ctx, file: string, place: Place, fn: () => T): Promise<T> {
  const bin = join(ctx.cbin, 'c-handler');
  const cpu = handlerCpu(place);
  const p = cpu ? spawn('taskset', ['-c', cpu, bin, file], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(bin, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (c) => (err += c));
  const exited = new Promise<void>((res) => p.on('exit', () => res()));
  try {
    await new Promise<void>((resolve, reject) => {
      p.stdout!.on('data', (c: Buffer) => {
        if (c.toString().includes('ready')) resolve();
      });
      p.on('exit', (code) => reject(new Error(`c-handler exited ${code}: ${err}`)));
    });
    return fn();
  } finally {
    p.kill('SIGTERM');
    await exited;
  }
}

/** CPU time (ms, all threads: utime + stime) the process has used, from /proc/PID/stat. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime (fields 14, 15) in USER_HZ = 100
}

/** Events the daemon's event thread answered alone (resident ranges), from its status. */
async function fastAnswered(w: World): Promise<{ answered: number; spun: number }> {
  const r = (await w.client.status()).recall as { fastAnswered?: number; fastSpun?: number };
  return { answered: Number(r.fastAnswered ?? 0), spun: Number(r.fastSpun ?? 0) };
}

export async function benchHandler(w: World, ctx: Ctx): Promise<Result[]> {
  const dir = join(w.data, 'b5');
  mkdirSync(dir);
  const size = 16 * MiB;
  const partial = join(dir, 'partial.bin');
  const plain = join(dir, 'plain.bin');
  writeRandomFile(partial, size);
  writeRandomFile(plain, size);
  sh('sync', []);
  await release(w, [partial], 'loc');
  // Recall the first chunk only (one random-looking read: no read-ahead).
  sh('bash', ['-c', `head -c 4096 '${partial}' > /dev/null`]);
  await settle(() => bytesFetched(w));
  const state = recordOf(partial)?.state;
  if (state !== 'partial') throw new Error(`5: expected a partial file after one read, record says ${state}`);

  const none = preads(ctx, plain);
  const rounds = 5;
  // Unpinned (the scheduler's choice: on this 2-vCPU VM a cross-CPU wake-up per event
  // dominates), then reader and handler pinned to one CPU (the handler's own work).
  const worker = (await w.client.status()).pid;
  const mask = sh('taskset', ['-p', String(worker)]).trim().split(':').pop()!.trim();
  const run = async (place: Place) => {
    const node: number[] = [];
    const c: number[] = [];
    let events = 0;
    const fast0 = await fastAnswered(w);
    const cpu0 = cpuMs(worker);
    let nodeMs = 0;
    const cpu = handlerCpu(place);
    if (cpu) sh('taskset', ['-a', '-p', '-c', cpu, String(worker)]);
    try {
      for (let i = 0; i < rounds; i++) {
        const e0 = await recallEvents(w);
        const t0 = nowMs();
        node.push(preads(ctx, partial, place).median);
        nodeMs += nowMs() - t0;
        events += (await recallEvents(w)) - e0;
        c.push((await withCHandler(ctx, plain, place, () => preads(ctx, plain, place))).median);
      }
    } finally {
      if (cpu) sh('taskset', ['-a', '-p', mask, String(worker)]);
    }
    const fast1 = await fastAnswered(w);
    // The daemon's CPU over the whole round, C rounds included (it idles through those).
    const busy = cpuMs(worker) - cpu0;
    log(`5 ${place}: node ${node.map((x) => x.toFixed(1))} us, C ${c.map((x) => x.toFixed(1))} us; events ${events}/${rounds * N}, answered by the event thread ${fast1.answered - fast0.answered} (found by adaptive polling ${fast1.spun - fast0.spun}); daemon cpu ${busy.toFixed(0)} ms over ${nodeMs.toFixed(0)} ms of its preads + the C rounds; load ${loadavg()}`);
    // One pread, one event: else the reads were not going through the handler at all.
    if (events < rounds * N) throw new Error(`5: the daemon saw ${events} events for ${rounds * N} preads: not every pread went through the handler`);
    return { node: median(node), c: median(c) };
  };
  const free = await run('free');
  const pinned = await run('pinned');
  // Not a goal of its own: the case an unpinned round lands in when the scheduler splits them.
  const crossed = await run('crossed');
  // An idle daemon must burn no CPU (adaptive polling spins only right after an answer).
  await new Promise((r) => setTimeout(r, 2000));
  const idle0 = cpuMs(worker);
  await new Promise((r) => setTimeout(r, 10_000));
  const idleMs = cpuMs(worker) - idle0;
  log(`5: idle daemon (worker pid ${worker}), 10 s after the rounds: ${idleMs.toFixed(0)} ms CPU`);
  const f1 = recordOf(partial)?.state;
  const note =
    `median of ${rounds} rounds x ${N} preads; no handler: ${none.median.toFixed(2)} us; record state after: ${f1}; ` +
    `idle daemon: ${idleMs.toFixed(0)} ms CPU in 10 s; reader on CPU 0 and handler on CPU 1 (every wake-up crosses vCPUs): daemon ${crossed.node.toFixed(1)} us, C ${crossed.c.toFixed(1)} us`;
  const row = (id: string, what: string, r: { node: number; c: number }): Result => ({
    id,
    name: `handler round trip: 4 KiB preads on a partial ${fmtBytes(size)} file (resident ranges), Node handler vs C handler, ${what}`,
    figure: `${r.node.toFixed(1)} us/pread (daemon)`,
    baseline: `C handler: ${r.c.toFixed(1)} us/pread`,
    ratio: r.node / r.c,
    dir: '<=',
    limit: 2,
    ratioIs: 'Node median / C median',
    note,
  });
  return [row('5a', 'unpinned', free), row('5b', 'reader and handler pinned to CPU 0', pinned)];
}
