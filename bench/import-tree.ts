// `tier import` of a large tree against just listing it with the same client (issue 13):
// N objects (default 100k) in directories of 1000 on a local tier (or --s3: the test RGW,
// objects put with the SDK), imported through a real daemon into a loop-mounted ext4.
// Prints: list time (the tier's own list(), in this process), import time (CLI wall clock
// and the daemon's own figure), the ratio, and the worker's peak RSS before and after.
// Then the same import run in this process (its own catalog, files not marked, another
// directory) with the live heap after a full GC every 10% of the objects: import's own
// memory, apart from what the rest of the daemon does meanwhile (change tracking).
//   node --import tsx bench/import-tree.ts [--objects 100000] [--s3]
// Needs root. Everything lives under /var/tmp/tier-bench-import-* and is removed at exit.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { S3Client, PutObjectCommand } from '@aws-sdk/client-s3';
import { LocalTier } from '../src/tiers/local.js';
import { S3Tier } from '../src/tiers/s3.js';
import { DEFAULT_TUNING } from '../src/dsl/ast.js';
import type { Tier } from '../src/tiers/tier.js';
import { connectDaemon } from '../src/daemon/client.js';
import { startDaemon } from '../test/daemon/harness.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Catalog } from '../src/engine/catalog.js';
import { runImport } from '../src/import/run.js';
import { jsonLogger } from '../src/log.js';
import { freshBucket, s3TestEnv } from '../test/helpers/rgw.js';

const arg = (k: string) => process.argv.indexOf(k);
const N = arg('--objects') > 0 ? Number(process.argv[arg('--objects') + 1]) : 100_000;
const useS3 = arg('--s3') > 0;
const PER_DIR = 1000;
const keyOf = (i: number) => `d${String(Math.floor(i / PER_DIR)).padStart(4, '0')}/f ${String(i).padStart(7, '0')}.dat`;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : -1;
}

function hwmKiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : -1;
}

async function main(): Promise<void> {
  const base = mkdtempSync('/var/tmp/tier-bench-import-');
  const mnt = join(base, 'mnt');
  const img = join(base, 'fs.img');
  mkdirSync(mnt);
  let mounted = false;
  let daemon: ReturnType<typeof startDaemon> | null = null;
  try {
    // Inodes for two trees of N files and their directories (the daemon's import, then the
    // in-process one); 512-byte inodes keep records in the inode.
    spawnSync('truncate', ['-s', `${Math.max(512, Math.ceil((N * 2.4 * 512) / 2 ** 20) + 256)}M`, img]);
    spawnSync('mkfs.ext4', ['-q', '-F', '-I', '512', '-N', String(Math.ceil(N * 2.2) + 2000), img]);
    if (spawnSync('mount', ['-o', 'loop', img, mnt]).status !== 0) throw new Error('mount failed');
    mounted = true;
    const data = join(mnt, 'data');
    const dest = join(data, 'imported');
    mkdirSync(dest, { recursive: true });
    const body = Buffer.alloc(1000, 'x');
    let tierBlock: string;
    let tier: Tier;
    const t0 = Date.now();
    if (useS3) {
      const e = s3TestEnv();
      const bucket = freshBucket(e, 'bench-import');
      const c = new S3Client({ endpoint: e.endpoint, region: e.region, forcePathStyle: true });
      for (let i = 0; i < N; i += 32) {
        await Promise.all(Array.from({ length: Math.min(32, N - i) }, (_, j) => c.send(new PutObjectCommand({ Bucket: bucket, Key: `t/${keyOf(i + j)}`, Body: body.subarray(0, (i + j) % 1000) }))));
      }
      c.destroy();
      tierBlock = `s3 bucket "${bucket}" prefix "t/" endpoint "${e.endpoint}" region "${e.region}" path_style true checksum when_required`;
      tier = new S3Tier({ kind: 's3', name: 'src', span: { file: '', line: 1, col: 1, length: 1 }, tuning: DEFAULT_TUNING, bucket, prefix: 't/', endpoint: e.endpoint, region: e.region, pathStyle: true, checksum: 'when_required' });
    } else {
      const dir = join(base, 'remote');
      for (let i = 0; i < N; i++) {
        if (i % PER_DIR === 0) mkdirSync(join(dir, keyOf(i), '..'), { recursive: true });
        writeFileSync(join(dir, keyOf(i)), body.subarray(0, i % 1000));
      }
      tierBlock = `local "${dir}"`;
      tier = new LocalTier('src', dir);
    }
    console.log(`${N} objects made on the ${useS3 ? 's3' : 'local'} tier in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // Just listing, same client, warm.
    let listed = 0;
    let l0 = Date.now();
    for await (const _ of tier.list('')) listed++;
    l0 = Date.now() - l0;

    const policy = join(base, 'p.hsmpolicy');
    writeFileSync(policy, `tier src { ${tierBlock} }\nfileset data { root "${data}" }\npolicy p on data { rule none: size < 0B -> keep }\n`);
    const state = join(base, 'state');
    daemon = startDaemon([policy], state);
    await daemon.ready;
    const client = (await connectDaemon(state))!;
    const worker = (await client.status()).pid;
    const rss0 = hwmKiB(worker);
    const i0 = Date.now();
    const step = Math.max(1000, Math.round(N / 10 / 1000) * 1000);
    const curve: string[] = [];
    const onProgress = (e: unknown) => {
      const p = e as { type: string; listed: number };
      if (p.type === 'progress' && p.listed % step === 0) curve.push(`${p.listed}: ${Math.round(rssKiB(worker) / 1024)}`);
    };
    const summary = (await client.import({ policyFile: policy, tier: 'src', dir: dest, dryRun: false, delete: false }, onProgress)) as { ms: number; counts: Record<string, number> };
    const wall = Date.now() - i0;
    const rss1 = hwmKiB(worker);
    console.log(`list: ${listed} objects in ${(l0 / 1000).toFixed(2)} s (${Math.round(listed / (l0 / 1000))}/s)`);
    console.log(`import: ${summary.counts.created} created in ${(wall / 1000).toFixed(2)} s wall (daemon ${(summary.ms / 1000).toFixed(2)} s, ${Math.round(summary.counts.created! / (wall / 1000))}/s), ${(wall / l0).toFixed(1)}x the listing`);
    console.log(`worker peak RSS: ${Math.round(rss0 / 1024)} MiB before, ${Math.round(rss1 / 1024)} MiB after`);
    console.log(`worker RSS (MiB) by objects done: ${curve.join(', ')}`);
    const r0 = Date.now();
    const again = (await client.import({ policyFile: policy, tier: 'src', dir: dest, dryRun: false, delete: false })) as { counts: Record<string, number> };
    console.log(`re-import: ${again.counts.unchanged} unchanged in ${((Date.now() - r0) / 1000).toFixed(2)} s`);
    await daemon.stop();
    daemon = null;
    await inProcess(tier, join(mnt, 'data2'), join(base, 'state2'));
    await tier.close();
  } finally {
    await daemon?.stop();
    if (mounted) spawnSync('umount', [mnt]);
    rmSync(base, { recursive: true, force: true });
  }
}

/** runImport in this process: live heap after a full GC every 10% of N, and RSS. */
async function inProcess(tier: Tier, data: string, state: string): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  mkdirSync(data, { recursive: true });
  const cat = new Catalog(join(state, 'catalog.db'));
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  const samples: string[] = [];
  const sample = (n: number) => {
    gc();
    const m = process.memoryUsage();
    samples.push(`${n}: heap ${mib(m.heapUsed)} MiB, rss ${mib(m.rss)}`);
  };
  sample(0);
  const step = Math.max(1000, Math.round(N / 10 / 1000) * 1000);
  try {
    const s = await runImport(
      { tierName: 'src', tier, dir: data, roots: [data], dryRun: false, deleteVanished: false, chunk: DEFAULT_TUNING.chunk, now: Date.now() },
      { catalog: cat, markReleased: () => {}, log: jsonLogger((l) => process.stderr.write(l + '\n'), 'error') },
      (e) => {
        if (e.type === 'progress' && e.listed % step === 0) sample(e.listed);
      },
    );
    if (s.counts.created !== N) throw new Error(`in-process import: ${s.counts.created} of ${N} created (${JSON.stringify(s.counts)})`);
    console.log(`in-process import: ${s.counts.created} created in ${(s.ms / 1000).toFixed(2)} s; live heap after GC by objects done:`);
    for (const l of samples) console.log(`  ${l}`);
  } finally {
    cat.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
