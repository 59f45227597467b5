// 8. Small files (issue 11, goal 6): a cold read of a released tree of 64 KiB files, one
// file after another (what `grep -r` or `cat dir/*` does), vs reading the tier's objects
// directly the same way: one SDK GetObject after another, warm client, body consumed.
// Goal >= 0.5 (files/s ratio). S3 tier (Ceph RGW, loopback). Each round reads a freshly
// released tree (after a read the files are whole again; releasing reuses the copies).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { Ctx } from './lib/context.js';
import { release, s3KeyOf, settled, type World } from './lib/setup.js';
import { fmtMs, log, median, nowMs, sh, timeAsync, type Result } from './lib/util.js';

const FILE = 64 * 1024;

export async function benchSmallFiles(w: World, ctx: Ctx): Promise<Result[]> {
  const n = Math.max(200, Math.round(4000 * ctx.scale));
  const dir = join(w.data, 'b8');
  mkdirSync(dir);
  const block = randomBytes(8 * 1024 * 1024);
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = join(dir, `f${String(i).padStart(5, '0')}.bin`);
    const off = (i * 65537) % (block.length - FILE);
    writeFileSync(p, block.subarray(off, off + FILE));
    paths.push(p);
  }
  sh('sync', []);
  log(`8: releasing ${n} x 64 KiB to rgw`);
  await release(w, paths, 'rgw');
  const keys = paths.map((p) => s3KeyOf(w, p));

  const rounds = 3;
  const raw: number[] = [];
  const tier: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r > 0) await settled(paths).then(() => release(w, paths, 'rgw'));
    const t0 = nowMs();
    for (const key of keys) {
      const o = await w.s3.send(new GetObjectCommand({ Bucket: w.bucket, Key: key }));
      let bytes = 0;
      for await (const c of o.Body as AsyncIterable<Buffer>) bytes += c.length;
      if (bytes !== FILE) throw new Error(`raw GET of ${key}: ${bytes} bytes, expected ${FILE}`);
    }
    raw.push(nowMs() - t0);
    // One process reads every file in turn, like grep -r (xargs: no argv limit).
    tier.push(await timeAsync('bash', ['-c', `cd '${dir}' && ls | xargs cat > /dev/null`]));
  }
  // A fast read of wrong bytes would be no result.
  paths.forEach((p, i) => {
    const off = (i * 65537) % (block.length - FILE);
    if (!readFileSync(p).equals(block.subarray(off, off + FILE))) throw new Error(`${p}: wrong bytes after recall`);
  });
  const rawMs = median(raw);
  const tierMs = median(tier);
  const rate = (ms: number) => `${Math.round(n / (ms / 1000))} files/s`;
  log(`8: raw ${raw.map(fmtMs)}, tier ${tier.map(fmtMs)}`);
  return [
    {
      id: '8',
      name: `cold read of a released tree of ${n} x 64 KiB files, one after another, S3 tier (Ceph RGW, loopback)`,
      figure: `${rate(tierMs)} (${fmtMs(tierMs)}, ${fmtMs(tierMs / n)}/file)`,
      baseline: `one SDK GetObject per object, in turn: ${rate(rawMs)} (${fmtMs(rawMs)})`,
      ratio: rawMs / tierMs,
      dir: '>=',
      limit: 0.5,
      ratioIs: 'tier files/s / raw GET files/s',
      note: `medians of ${rounds} rounds (the tree released afresh each round); cat via xargs in one process`,
    },
  ];
}
