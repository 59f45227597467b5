// 3. First byte of a released file: open() + read() of 1 byte, timed inside a C program
// (bench/preader.c `first`: from before the open to after the read, no process start-up),
// vs a raw 4 KiB ranged GET of the same object (SDK, warm connection, in this process) and
// vs the same open + read through `rclone mount --vfs-cache-mode full` on the same object.
// Goal: within 2x of the raw GET, ahead of rclone. Medians over ctx.reps fresh
// files/objects (every read is a first one). The rclone directory entries are looked up
// before its timing (only the data is timed). The note keeps the wall time of `head -c 1`
// on a few more released files, with its spawn floor (`head -c 1` of a resident file).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { Ctx } from './lib/context.js';
import { rcloneMount } from './lib/rclone.js';
import { release, s3KeyOf, writeRandomFile, type World } from './lib/setup.js';
import { fmtBytes, fmtMs, loadavg, log, median, MiB, nowMs, sh, timeAsync, type Result } from './lib/util.js';

async function rangedGet(w: World, key: string): Promise<number> {
  const t0 = nowMs();
  const r = await w.s3.send(new GetObjectCommand({ Bucket: w.bucket, Key: key, Range: 'bytes=0-4095' }));
  let bytes = 0;
  for await (const c of r.Body as AsyncIterable<Buffer>) bytes += c.length;
  const ms = nowMs() - t0;
  if (bytes !== 4096) throw new Error(`ranged GET ${key}: ${bytes} bytes`);
  return ms;
}

/** `head -c 1` under strace -T: the time its open() and first read() of the file took. */
function tracedSyscalls(file: string): string {
  const r = spawnSync('strace', ['-T', '-e', 'trace=openat,read', 'head', '-c', '1', file], { encoding: 'utf8' });
  const lines = (r.stderr ?? '').split('\n');
  const i = lines.findIndex((l) => l.includes(`"${file}"`) && l.startsWith('openat'));
  const secs = (l: string | undefined) => Number(/<([\d.]+)>\s*$/.exec(l ?? '')?.[1] ?? NaN) * 1000;
  const read = lines.slice(i + 1).find((l) => l.startsWith('read('));
  if (i < 0 || !read) return 'not traced';
  return `open ${fmtMs(secs(lines[i]))}, first read ${fmtMs(secs(read))}`;
}

/** The daemon's latency for the first recall of each file, from its recall log (STATE/recall-log.db). */
async function daemonLatencies(w: World, files: string[]): Promise<number[]> {
  const db = join(w.stateDir, 'recall-log.db');
  if (!existsSync(db)) return [];
  await sleep(1500); // the log is flushed once a second
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    const q = d.prepare('SELECT latency_ms AS ms FROM recalls WHERE path = ? ORDER BY at, id LIMIT 1');
    return files.map((f) => (q.get(f) as { ms: number } | undefined)?.ms).filter((x): x is number => typeof x === 'number');
  } catch (e) {
    log(`3: recall log not readable: ${(e as Error).message}`);
    return [];
  } finally {
    d.close();
  }
}

/** open + read(1) of `file`, timed inside bench/preader.c: [total ms, open ms]. */
function firstByte(ctx: Ctx, file: string): [number, number] {
  const [total, open] = sh(join(ctx.cbin, 'preader'), [file, 'first']).trim().split(' ').map(Number);
  return [total! / 1e6, open! / 1e6];
}

export async function benchFirstByte(w: World, ctx: Ctx): Promise<Result[]> {
  const dir = join(w.data, 'b3');
  mkdirSync(dir);
  const size = Math.max(16 * MiB, Math.round(ctx.bigSize / 4 / 4096) * 4096);
  const files: string[] = [];
  for (let i = 0; i < ctx.reps; i++) {
    const f = join(dir, `fb-${i}.bin`);
    writeRandomFile(f, size);
    files.push(f);
  }
  // A few more for `head -c 1` (a process spawn included), for the note.
  const heads: string[] = [];
  for (let i = 0; i < Math.min(ctx.reps, 3); i++) {
    const f = join(dir, `fb-head-${i}.bin`);
    writeRandomFile(f, size);
    heads.push(f);
  }
  // One more, read under strace -T: how long head's open() and its first read() block.
  const traced = join(dir, 'fb-traced.bin');
  writeRandomFile(traced, size);
  const floorFile = join(dir, 'resident.bin');
  writeRandomFile(floorFile, 4096);
  sh('sync', []);
  log(`3: releasing ${files.length} x ${fmtBytes(size)} to rgw`);
  await release(w, [...files, ...heads, traced], 'rgw');
  const keys = files.map((f) => s3KeyOf(w, f));

  // Warm the SDK connection on something else first: the baseline is a warm-client GET.
  await rangedGet(w, keys[0]!).catch(() => 0);
  const raw: number[] = [];
  for (const k of keys) raw.push(await rangedGet(w, k));
  const floor: number[] = [];
  for (let i = 0; i < ctx.reps; i++) floor.push(await timeAsync('head', ['-c', '1', floorFile]));

  // rclone first (its reads do not touch the released files).
  const rc: number[] = [];
  const m = await rcloneMount(w.s3env, w.bucket, w.base);
  try {
    for (const k of keys) {
      const p = join(m.dir, k);
      statSync(p); // directory lookups outside the timing
      rc.push(firstByte(ctx, p)[0]);
    }
  } finally {
    await m.close();
  }
  const fast0 = Number((await w.client.status()).recall?.fastAnswered ?? 0);
  const tier: number[] = [];
  const opens: number[] = [];
  for (const f of files) {
    const [ms, open] = firstByte(ctx, f);
    tier.push(ms);
    opens.push(open);
  }
  // Opens the daemon's event thread answered (not the main thread): one per file when it can.
  const fastOpens = Number((await w.client.status()).recall?.fastAnswered ?? 0) - fast0;
  const head: number[] = [];
  for (const f of heads) head.push(await timeAsync('head', ['-c', '1', f]));
  const syscalls = tracedSyscalls(traced);
  const daemonMs = await daemonLatencies(w, files);
  const t = median(tier);
  const r = median(raw);
  const c = median(rc);
  const fl = median(floor);
  log(
    `3: tier ${tier.map((x) => x.toFixed(2))} (open ${opens.map((x) => x.toFixed(2))}) raw ${raw.map((x) => x.toFixed(2))} rclone ${rc.map((x) => x.toFixed(2))}` +
      ` head -c 1 ${head.map((x) => x.toFixed(1))} floor ${fmtMs(fl)}; events answered by the event thread: ${fastOpens}; load ${loadavg()}`,
  );
  const dl = daemonMs.length > 0 ? `; the daemon's own latency for the reads (recall log): median ${fmtMs(median(daemonMs))}` : '';
  const note =
    `medians of ${ctx.reps}; open() alone ${fmtMs(median(opens))}${dl}; ` +
    `head -c 1 (wall, spawn included) of ${head.length} more released files: ${fmtMs(median(head))}, of a resident file (spawn floor): ${fmtMs(fl)}; ` +
    `one more file under strace -T: ${syscalls}`;
  return [
    {
      id: '3a',
      name: `first byte (open + read 1 byte, timed in C) of a released ${fmtBytes(size)} file, S3 tier, vs raw 4 KiB ranged GET`,
      figure: fmtMs(t),
      baseline: `SDK GetObject Range 0-4095: ${fmtMs(r)}`,
      ratio: t / r,
      dir: '<=',
      limit: 2,
      ratioIs: 'tier time / raw GET time',
      note,
    },
    {
      id: '3b',
      name: 'first byte (open + read 1 byte, timed in C), same objects: tier vs rclone mount --vfs-cache-mode full',
      figure: fmtMs(t),
      baseline: `rclone mount: ${fmtMs(c)}`,
      ratio: t / c,
      dir: '<=',
      limit: 1,
      ratioIs: 'tier time / rclone time (< 1: ahead)',
      note,
    },
  ];
}
