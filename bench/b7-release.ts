// 7. Release throughput to S3: many 64 KiB files and a few large files released through the
// daemon (`tier apply`, see releaseAll) vs `rclone copy` of the same set to
// the same RGW (default settings). Goal >= 1x. Both read the set from the page cache
// (it was just written). rclone runs first and its copy is purged before the release, so
// the RGW memstore holds one copy at a time.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Ctx } from './lib/context.js';
import { rcloneCopy, rclonePurge } from './lib/rclone.js';
import { policyText, recordOf, release, REPO, writeRandomFile, type World } from './lib/setup.js';
import { fmtBytes, fmtMs, fmtRate, log, nowMs, sh, type Result } from './lib/util.js';

/**
 * `tier apply` (CLI -> daemon, the engine's scan/plan/bounded pool) with a policy whose only
 * rule releases the set to rgw; when the daemon does not run applies yet (501), one manual
 * release request with every path (the daemon then migrates one file after another).
 */
async function releaseAll(w: World, dir: string, paths: string[]): Promise<{ ms: number; via: string }> {
  const pfile = join(w.base, 'b7.hsmpolicy');
  const text = policyText(w).replace(/fileset data \{ root "[^"]*" \}/, `fileset data { root "${dir}" }`)
    .replace(/rule none: .*$/m, 'rule all: size >= 0B -> release to rgw');
  writeFileSync(pfile, text);
  const t0 = nowMs();
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'apply', pfile, '--state-dir', w.stateDir], { cwd: REPO, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const ms = nowMs() - t0;
  if (r.status === 0) {
    const released = paths.filter((p) => recordOf(p)?.state === 'released').length;
    if (released !== paths.length) throw new Error(`tier apply exited 0 but ${released}/${paths.length} files are released:\n${r.stdout.slice(-1500)}`);
    return { ms, via: 'tier apply through the daemon (CLI start-up included)' };
  }
  if (!/not wired/.test(r.stderr + r.stdout)) throw new Error(`tier apply: exit ${r.status}\n${(r.stderr + r.stdout).slice(-1500)}`);
  log('7: the daemon does not run applies yet; one manual release request instead');
  const t1 = nowMs();
  await release(w, paths, 'rgw');
  return { ms: nowMs() - t1, via: 'one manual release request to the daemon (tier apply through the daemon answered "not wired yet")' };
}

/**
 * RGW frees a deleted object's tail only in its garbage collection, hours later by default;
 * the memstore OSD of scripts/rgw.sh holds 8 GiB, which at --scale 1 the two copies of the
 * set would overflow. Best effort: only when we know the cluster's conf (rgw.sh exports it).
 */
function rgwGcNow(): void {
  const dir = process.env.TIER_TEST_RGW_DIR;
  if (!dir) return;
  try {
    sh('timeout', ['120', 'radosgw-admin', '-c', join(dir, 'ceph.conf'), 'gc', 'process', '--include-all']);
  } catch (e) {
    log(`7: radosgw-admin gc process failed (ignored): ${(e as Error).message.split('\n')[0]}`);
  }
}

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

  // Small files, then large files, each: rclone copy (then purged), then tier. The total is
  // the sum; the parts say which kind of file the difference comes from.
  const parts = [
    { what: `${ctx.smallFiles} x 64 KiB`, dir: smallDir, paths: paths.slice(0, ctx.smallFiles), bytes: ctx.smallFiles * 65536 },
    { what: `${ctx.largeFiles} x ${fmtBytes(ctx.bigSize)}`, dir: largeDir, paths: paths.slice(ctx.smallFiles), bytes: ctx.largeFiles * ctx.bigSize },
  ];
  let rc = 0;
  let tier = 0;
  const vias = new Set<string>();
  const split: string[] = [];
  for (const [i, part] of parts.entries()) {
    log(`7: rclone copy of ${part.what}`);
    const r = await rcloneCopy(w.s3env, part.dir, w.bucket, `rclone-copy-${i}`);
    await rclonePurge(w.s3env, w.bucket, `rclone-copy-${i}`);
    rgwGcNow();
    const how = await releaseAll(w, part.dir, part.paths);
    log(`7: ${part.what}: rclone ${fmtMs(r)}, tier (${how.via}) ${fmtMs(how.ms)}`);
    rc += r;
    tier += how.ms;
    vias.add(how.via);
    split.push(`${part.what}: tier ${fmtRate(part.bytes, how.ms)} vs rclone ${fmtRate(part.bytes, r)} (${(r / how.ms).toFixed(2)})`);
  }
  const how = { via: [...vias].join('; ') };
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
      note: `${split.join('; ')}. tier: upload + verify + punch + xattr + catalog per file; ${how.via}`,
    },
  ];
}
