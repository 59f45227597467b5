// 7. Release throughput to S3: many 64 KiB files and a few large files released through the
// daemon (one control request, as `tier apply` sends) vs `rclone copy` of the same set to
// the same RGW (default settings). Goal >= 1x. Both read the set from the page cache
// (it was just written). rclone runs first and its copy is purged before the release, so
// the RGW memstore holds one copy at a time.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Ctx } from './lib/context.js';
import { rcloneCopy, rclonePurge } from './lib/rclone.js';
import { release, writeRandomFile, type World } from './lib/setup.js';
import { fmtBytes, fmtMs, fmtRate, log, nowMs, sh, type Result } from './lib/util.js';

export async function benchRelease(w: World, ctx: Ctx): Promise<Result[]> {
  const dir = join(w.data, 'b7');
  const smallDir = join(dir, 'small');
  const largeDir = join(dir, 'large');
  mkdirSync(smallDir, { recursive: true });
  mkdirSync(largeDir, { recursive: true });
  const paths: string[] = [];
  const block = randomBytes(8 * 1024 * 1024);
  for (let i = 0; i < ctx.smallFiles; i++) {
    const p = join(smallDir, `s${String(i).padStart(5, '0')}.bin`);
    const off = (i * 65537) % (block.length - 65536);
    writeFileSync(p, block.subarray(off, off + 65536));
    paths.push(p);
  }
  for (let i = 0; i < ctx.largeFiles; i++) {
    const p = join(largeDir, `l${i}.bin`);
    writeRandomFile(p, ctx.bigSize);
    paths.push(p);
  }
  sh('sync', []);
  const total = ctx.smallFiles * 65536 + ctx.largeFiles * ctx.bigSize;
  const what = `${ctx.smallFiles} x 64 KiB + ${ctx.largeFiles} x ${fmtBytes(ctx.bigSize)} (${fmtBytes(total)})`;
  // Warm both readers' page cache alike.
  sh('bash', ['-c', `cat ${smallDir}/* ${largeDir}/* > /dev/null`]);

  log(`7: rclone copy of ${what}`);
  const rc = await rcloneCopy(w.s3env, dir, w.bucket, 'rclone-copy');
  await rclonePurge(w.s3env, w.bucket, 'rclone-copy');
  log(`7: rclone ${fmtMs(rc)}; releasing through the daemon`);
  const t0 = nowMs();
  await release(w, paths, 'rgw');
  const tier = nowMs() - t0;
  log(`7: tier release ${fmtMs(tier)}`);
  return [
    {
      id: '7',
      name: `release throughput to S3: ${what}`,
      figure: `${fmtRate(total, tier)} (${fmtMs(tier)})`,
      baseline: `rclone copy: ${fmtRate(total, rc)} (${fmtMs(rc)})`,
      ratio: rc / tier,
      dir: '>=',
      limit: 1,
      ratioIs: 'tier throughput / rclone throughput',
      note: 'tier: upload + verify + punch + xattr + catalog per file, one manual release request to the daemon',
    },
  ];
}
