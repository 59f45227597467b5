// Small helpers shared by the benchmarks: timing, child processes, formatting, results.
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** One benchmark line: figure vs baseline measured in the same run, the ratio, the goal. */
export interface Result {
  id: string; // "1a", "2b", ...
  name: string;
  figure: string;
  baseline: string;
  ratio: number;
  /** "<= 2", ">= 0.8", ... the ratio is compared with `limit` in direction `dir`. */
  dir: '<=' | '>=';
  limit: number;
  /** What the ratio means, e.g. "fetched / read". */
  ratioIs: string;
  note?: string;
}

export const passed = (r: Result): boolean => (r.dir === '<=' ? r.ratio <= r.limit : r.ratio >= r.limit);

/** How far a missed goal is off, as the factor the ratio would have to improve by. */
export function missBy(r: Result): string {
  if (passed(r)) return '';
  const f = r.dir === '<=' ? r.ratio / r.limit : r.limit / r.ratio;
  return f < 1.1 ? `missed by ${((f - 1) * 100).toFixed(1)}%` : `missed by ${f.toFixed(2)}x`;
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Runs a command synchronously; throws with its stderr on a non-zero exit. */
export function sh(cmd: string, args: string[], o: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * MiB, ...o });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status ?? r.signal}\n${String(r.stderr ?? '').slice(-2000)}`);
  return String(r.stdout ?? '');
}

/** Wall time (ms) of a shell pipeline run with bash -c (the spawn of bash included). */
export function timeBash(script: string, env?: NodeJS.ProcessEnv): number {
  const t0 = nowMs();
  sh('bash', ['-c', script], env ? { env } : {});
  return nowMs() - t0;
}

/**
 * Wall time (ms) of a command run asynchronously: the daemon may live in this process's
 * children, and a sync spawn would be fine, but async keeps timers (e.g. rclone) alive.
 */
export function timeAsync(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: env ?? process.env });
    let err = '';
    p.stderr!.on('data', (c) => (err += c));
    p.on('error', reject);
    p.on('exit', (code, sig) => {
      const ms = nowMs() - t0;
      if (code === 0) resolve(ms);
      else reject(new Error(`${cmd} ${args.join(' ')}: exit ${code ?? sig}\n${err.slice(-2000)}`));
    });
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const fmtBytes = (n: number): string =>
  n >= GiB ? `${(n / GiB).toFixed(2)} GiB` : n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
export const fmtMs = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`);
export const fmtRate = (bytes: number, ms: number): string => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

/** Bytes allocated on disk for a file (st_blocks * 512). */
export const allocated = (path: string): number => statSync(path).blocks * 512;

/** Drops one file's pages from the page cache (posix_fadvise DONTNEED through dd). */
export function dropFileCache(path: string): void {
  sh('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** Polls `read` until it returns the same value for `quietMs` (background read-ahead settles). */
export async function settle(read: () => Promise<number> | number, quietMs = 600, maxMs = 30_000): Promise<number> {
  const deadline = Date.now() + maxMs;
  let last = await read();
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(100);
    const v = await read();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return v;
  }
  return last;
}

export function loadavg(): string {
  return sh('cat', ['/proc/loadavg']).trim().split(' ').slice(0, 3).join(' ');
}

/** Unmounts a bench's loop filesystem (lazily if busy) and removes its directory. */
export function unmountAndRemove(mnt: string, base: string): void {
  try {
    sh('umount', [mnt]);
  } catch {
    sh('umount', ['-l', mnt]);
  }
  rmSync(base, { recursive: true, force: true });
}
