// 5. Handler round trip: 4 KiB preads (bench/preader.c, random pages inside the first MiB)
// on a partial file whose ranges are resident: tier's Node handler (the daemon answers from
// its resident map) vs bench/c-handler.c (a bare fanotify pre-content handler that answers
// FAN_ALLOW at once) on a plain file of the same size. Goal: within 2x (median pread).
// The daemon's event counter must grow by one per pread (else we measured no round trip).
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Ctx } from './lib/context.js';
import { bytesFetched, recallEvents, recordOf, release, writeRandomFile, type World } from './lib/setup.js';
import { fmtBytes, log, median, MiB, settle, sh, type Result } from './lib/util.js';

const N = 20_000;
const SPAN = 1 * MiB;

/** Runs the reader, optionally pinned to CPU 0 (taskset). Microseconds per pread. */
function preads(ctx: Ctx, file: string, pin = false): { median: number; mean: number; p99: number } {
  const cmd = [join(ctx.cbin, 'preader'), file, String(N), String(SPAN)];
  const out = pin ? sh('taskset', ['-c', '0', ...cmd]) : sh(cmd[0]!, cmd.slice(1));
  const [m, mean, p99] = out.trim().split(' ').map(Number);
  return { median: m! / 1000, mean: mean! / 1000, p99: p99! / 1000 };
}

async function withCHandler<T>(ctx: Ctx, file: string, pin: boolean, fn: () => T): Promise<T> {
  const bin = join(ctx.cbin, 'c-handler');
  const p = pin ? spawn('taskset', ['-c', '0', bin, file], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(bin, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
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

/** Events the daemon's event thread answered alone (resident ranges), from its status. */
async function fastAnswered(w: World): Promise<number> {
  const s = await w.client.status();
  return Number((s.recall as { fastAnswered?: number }).fastAnswered ?? 0);
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
  const run = async (pin: boolean) => {
    const node: number[] = [];
    const c: number[] = [];
    let events = 0;
    const fast0 = await fastAnswered(w);
    if (pin) sh('taskset', ['-a', '-p', '-c', '0', String(worker)]);
    try {
      for (let i = 0; i < rounds; i++) {
        const e0 = await recallEvents(w);
        node.push(preads(ctx, partial, pin).median);
        events += (await recallEvents(w)) - e0;
        c.push((await withCHandler(ctx, plain, pin, () => preads(ctx, plain, pin))).median);
      }
    } finally {
      if (pin) sh('taskset', ['-a', '-p', mask, String(worker)]);
    }
    const fast = (await fastAnswered(w)) - fast0;
    log(`5 ${pin ? 'pinned' : 'unpinned'}: node ${node.map((x) => x.toFixed(1))} us, C ${c.map((x) => x.toFixed(1))} us; events ${events}/${rounds * N}, answered by the event thread ${fast}`);
    // One pread, one event: else the reads were not going through the handler at all.
    if (events < rounds * N) throw new Error(`5: the daemon saw ${events} events for ${rounds * N} preads: not every pread went through the handler`);
    return { node: median(node), c: median(c) };
  };
  const free = await run(false);
  const pinned = await run(true);
  const f1 = recordOf(partial)?.state;
  const note = `median of ${rounds} rounds x ${N} preads; no handler: ${none.median.toFixed(2)} us; record state after: ${f1}`;
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
