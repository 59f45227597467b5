// How many CPUs sat idle lately (/proc/stat), for the hasher's choice of a second thread
// (hasher.ts): a second hashing thread pays only where a CPU would otherwise idle.
// Rules: at most one read of /proc/stat per INTERVAL_MS (a deep queue asks per run); the
// figure covers the last interval, not the boot's average nor a minute's (loadavg lags a
// cold read's few seconds), and a previous sample older than STALE_MS is no base (a first
// sample again: 0); at most availableParallelism() CPUs count (a cgroup or affinity limit
// leaves the host's other CPUs idle, not ours); anything unreadable counts as no idle CPU.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

const INTERVAL_MS = 100;
const STALE_MS = 1000;
type Sample = { at: number; idle: number; total: number };
let last: Sample | null = null;
let idle = 0;
let cpus = 0;
let readStat = (): string => readFileSync('/proc/stat', 'utf8');

/** Idle CPUs over the last interval or so (0.5: half a CPU idle on average); 0 on a first sample. */
export function idleCpus(now = performance.now()): number {
  if (last && now - last.at < INTERVAL_MS) return idle;
  let cur: Sample;
  try {
    const stat = readStat();
    const f = stat.slice(0, 200).split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    cur = { at: now, idle: f[3]! + f[4]!, total: f.reduce((a, b) => a + b, 0) };
    if (!Number.isFinite(cur.total)) throw new Error('no cpu line');
    cpus ||= Math.min(availableParallelism(), Math.max(1, stat.split('\n').filter((l) => /^cpu\d/.test(l)).length));
  } catch {
    last = null;
    return (idle = 0);
  }
  const base = last && now - last.at <= STALE_MS && cur.total > last.total ? last : null;
  // /proc/stat counts USER_HZ ticks summed over CPUs: idle ticks / wall ticks = idle CPUs.
  idle = base ? Math.min(cpus, ((cur.idle - base.idle) / (cur.total - base.total)) * cpus) : 0;
  last = cur;
  return idle;
}

/** Tests only: read `stat` instead of /proc/stat (null: /proc/stat again), from no sample. */
export function setStatReaderForTests(stat: (() => string) | null): void {
  readStat = stat ?? (() => readFileSync('/proc/stat', 'utf8'));
  last = null;
  idle = 0;
  cpus = 0;
}
