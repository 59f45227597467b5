// How many CPUs sat idle lately (/proc/stat), for the hasher's choice of a second thread
// (hasher.ts): a second hashing thread pays only where a CPU would otherwise idle.
// Rules: at most one read of /proc/stat per INTERVAL_MS (a deep queue asks per run); the
// figure covers the last interval, not the boot's average nor a minute's (loadavg lags a
// cold read's few seconds); anything unreadable counts as no idle CPU.
import { readFileSync } from 'node:fs';

const INTERVAL_MS = 100;
let last: { at: number; idle: number; total: number } | null = null;
let idle = 0;

/** Idle CPUs over the last interval or so (0.5: half a CPU idle on average); 0 until a second sample. */
export function idleCpus(now = performance.now()): number {
  if (last && now - last.at < INTERVAL_MS) return idle;
  let cur: { at: number; idle: number; total: number };
  try {
    const f = readFileSync('/proc/stat', 'utf8').slice(0, 200).split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    cur = { at: now, idle: f[3]! + f[4]!, total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return 0;
  }
  // /proc/stat counts USER_HZ ticks summed over CPUs: idle ticks / wall ticks = idle CPUs.
  if (last && cur.total > last.total) idle = ((cur.idle - last.idle) / (cur.total - last.total)) * cpus();
  last = cur;
  return idle;
}

let n = 0;
const cpus = () => (n ||= Math.max(1, readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d/.test(l)).length));
