// 5. Handler round trip: 4 KiB preads (bench/preader.c, random pages inside the first MiB)
// on a partial file whose ranges are resident: tier's Node handler (the daemon answers from
// its resident map) vs bench/c-handler.c (a bare fanotify pre-content handler that answers
// FAN_ALLOW at once) on a plain file of the same size. Goal: within 2x (median pread).
// The daemon's event counter must grow by one per pread (else we measured no round trip).
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Ctx } from './lib/context.js';
import { recallEvents, recordOf, release, writeRandomFile, type World } from './lib/setup.js';
import { bytesFetched } from './lib/setup.js';
import { fmtBytes, log, median, MiB, settle, sh, type Result } from './lib/util.js';

const N = 20_000;
const SPAN = 1 * MiB;

function preads(ctx: Ctx, file: string): { median: number; mean: number; p99: number } {
  const [m, mean, p99] = sh(join(ctx.cbin, 'preader'), [file, String(N), String(SPAN)]).trim().split(' ').map(Number);
  return { median: m! / 1000, mean: mean! / 1000, p99: p99! / 1000 };
}

async function withCHandler<T>(ctx: Ctx, file: string, fn: () => T): Promise<T> {
  const p = spawn(join(ctx.cbin, 'c-handler'), [file], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  const node: number[] = [];
  const c: number[] = [];
  let events = 0;
  const rounds = Math.max(2, Math.min(3, ctx.reps));
  for (let i = 0; i < rounds; i++) {
    const e0 = await recallEvents(w);
    node.push(preads(ctx, partial).median);
    events += (await recallEvents(w)) - e0;
    c.push((await withCHandler(ctx, plain, () => preads(ctx, plain))).median);
  }
  const f1 = recordOf(partial)?.state;
  const n = median(node);
  const cc = median(c);
  log(`5: node ${node.map((x) => x.toFixed(1))} us, C ${c.map((x) => x.toFixed(1))} us, no mark ${none.median.toFixed(2)} us; events ${events}/${rounds * N}; state after ${f1}`);
  if (events < rounds * N) throw new Error(`5: the daemon saw ${events} events for ${rounds * N} preads: not every pread went through the handler`);
  return [
    {
      id: '5',
      name: `handler round trip: 4 KiB preads on a partial ${fmtBytes(size)} file (resident ranges), Node handler vs C handler`,
      figure: `${n.toFixed(1)} us/pread (daemon)`,
      baseline: `C handler: ${cc.toFixed(1)} us/pread`,
      ratio: n / cc,
      dir: '<=',
      limit: 2,
      ratioIs: 'Node median / C median',
      note: `median of ${rounds} rounds x ${N} preads; no mark: ${none.median.toFixed(2)} us; record state after: ${f1}`,
    },
  ];
}
