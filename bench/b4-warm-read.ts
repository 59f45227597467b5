// 4. Reads of a fully recalled file (benchmark 2's S3 file) vs a never-released file of the
// same size on the same filesystem, both in the page cache (goal >= 0.95), and vs rclone's
// warm cache on the same object (goal >= 15x). A cat-like loop of 128 KiB read()s timed
// inside bench/preader.c (`preader FILE seq`: no process start-up in the figure), median
// of several reads after one warming read each.
import { join } from 'node:path';
import type { Ctx } from './lib/context.js';
import { rcloneMount } from './lib/rclone.js';
import { recordOf, s3KeyOf, settled, type World } from './lib/setup.js';
import { allocated, fmtBytes, fmtMs, fmtRate, log, median, sh, type Result } from './lib/util.js';

/** ms of one front-to-back read in 128 KiB read()s, timed inside bench/preader.c (no spawn). */
function seqRead(ctx: Ctx, path: string, size: number): number {
  const [ns, bytes] = sh(join(ctx.cbin, 'preader'), [path, 'seq']).trim().split(' ').map(Number);
  if (bytes !== size) throw new Error(`4: read ${bytes} bytes of ${path}, expected ${size}`);
  return ns! / 1e6;
}

function warmRead(ctx: Ctx, path: string, size: number, reps: number): number {
  seqRead(ctx, path, size);
  const t: number[] = [];
  for (let i = 0; i < reps; i++) t.push(seqRead(ctx, path, size));
  return median(t);
}

export async function benchWarmRead(w: World, ctx: Ctx, recalled: string): Promise<Result[]> {
  const size = ctx.bigSize;
  await settled([recalled]); // recorded whole and unmarked: warm reads raise no event
  const rec = recordOf(recalled);
  const state = rec?.state ?? 'none';
  const alloc = allocated(recalled);
  const plain = join(w.data, 'b2', 'never-released.bin');
  // Written in 4 MiB writes like a recall's chunk fills (the write size decides the page
  // cache's folio sizes, and with them the warm read speed: head -c's small writes read
  // back ~1.5x slower here).
  sh('dd', ['if=/dev/urandom', `of=${plain}`, 'bs=4M', `count=${Math.ceil(size / (4 * 1024 * 1024))}`, 'iflag=fullblock', 'status=none']);
  sh('truncate', ['-s', String(size), plain]);
  sh('sync', []);
  // Interleaved rounds so that a burst of load on the shared machine hits both alike.
  const tr: number[] = [];
  const pr: number[] = [];
  warmRead(ctx, recalled, size, 0);
  warmRead(ctx, plain, size, 0);
  for (let i = 0; i < ctx.reps * 2 + 1; i++) {
    tr.push(seqRead(ctx, recalled, size));
    pr.push(seqRead(ctx, plain, size));
  }
  const t = median(tr);
  const p = median(pr);
  log(`4: recalled (state ${state}, ${fmtBytes(alloc)} allocated) ${fmtMs(t)}, never released ${fmtMs(p)}`);

  const m = await rcloneMount(w.s3env, w.bucket, w.base);
  let rc: number;
  try {
    rc = warmRead(ctx, join(m.dir, s3KeyOf(w, recalled)), size, ctx.reps);
  } finally {
    await m.close();
  }
  log(`4: rclone warm ${fmtMs(rc)}`);
  const note = `recalled file: record state ${state}, ${fmtBytes(alloc)} allocated of ${fmtBytes(size)}; medians of ${ctx.reps * 2 + 1} interleaved reads (rclone: ${ctx.reps})`;
  return [
    {
      id: '4a',
      name: `warm read (128 KiB reads) of a fully recalled ${fmtBytes(size)} file vs a never-released one, same filesystem`,
      figure: `${fmtRate(size, t)} (${fmtMs(t)})`,
      baseline: `never released: ${fmtRate(size, p)} (${fmtMs(p)})`,
      ratio: p / t,
      dir: '>=',
      limit: 0.95,
      ratioIs: 'recalled throughput / never-released throughput',
      note,
    },
    {
      id: '4b',
      name: `warm read (128 KiB reads) of the recalled file vs rclone mount --vfs-cache-mode full, warm cache, same object`,
      figure: `${fmtRate(size, t)} (${fmtMs(t)})`,
      baseline: `rclone warm: ${fmtRate(size, rc)} (${fmtMs(rc)})`,
      ratio: rc / t,
      dir: '>=',
      limit: 15,
      ratioIs: 'tier throughput / rclone throughput',
      note,
    },
  ];
}
