// CPU accounting around a timed step: the machine's busy time (/proc/stat) and the CPU of
// a process tree's threads by name (/proc/PID/task/TID/stat), so a row can say whether a
// figure was bound by CPU, and whose.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ 100 on Linux

interface Snap {
  busy: number;
  total: number;
  threads: Map<string, number>; // "comm" -> ticks (utime + stime), summed over the tree
  others: number; // ticks of the `others` processes (all their threads)
}

/** comm and utime + stime ticks (fields 14, 15) of a /proc/.../stat text. */
function statTicks(s: string): { comm: string; ticks: number } {
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), ticks: Number(f[11]) + Number(f[12]) };
}

function children(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      /* gone */
    }
  }
  return out;
}

function snap(root: number, others: number[]): Snap {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = cpu[3]! + cpu[4]!;
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  const threads = new Map<string, number>();
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    todo.push(...children(pid));
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const { comm, ticks } = statTicks(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8'));
        const key = comm === 'node' || comm.startsWith('node') ? `${comm}/${t}` : comm;
        threads.set(key, (threads.get(key) ?? 0) + ticks);
      } catch {
        /* gone */
      }
    }
  }
  let otherTicks = 0;
  for (const p of others) {
    try {
      otherTicks += statTicks(readFileSync(`/proc/${p}/stat`, 'utf8')).ticks;
    } catch {
      /* gone: counts 0 */
    }
  }
  return { busy: total - idle, total, threads, others: otherTicks };
}

export interface CpuUse {
  /** CPU time of the tree's threads over the step, ms. */
  treeMs: number;
  /** The machine's busy share over the step (1 = every CPU busy). */
  busy: number;
  /** The machine's busy CPU time over the step (all CPUs), ms. */
  machineMs: number;
  /** CPU time of the `others` processes over the step (all their threads), ms. */
  othersMs: number;
  /** Thread names with the most CPU, "name 123 ms" joined. */
  top: string;
}

/**
 * Measures CPU over `step` (a tree rooted at `root`: the daemon's, its worker and threads),
 * and that of the processes `others` (e.g. the RGW's: cephPids) at the same instants.
 */
export async function cpuOver<T>(root: number, step: () => Promise<T>, others: number[] = []): Promise<{ value: T; cpu: CpuUse }> {
  const a = snap(root, others);
  const value = await step();
  const b = snap(root, others);
  let tree = 0;
  const per: [string, number][] = [];
  for (const [k, v] of b.threads) {
    const d = v - (a.threads.get(k) ?? 0);
    tree += d;
    if (d > 0) per.push([k, d]);
  }
  per.sort((x, y) => y[1] - x[1]);
  const total = b.total - a.total;
  return {
    value,
    cpu: {
      treeMs: tree * TICK_MS,
      busy: total > 0 ? (b.busy - a.busy) / total : 0,
      machineMs: (b.busy - a.busy) * TICK_MS,
      othersMs: (b.others - a.others) * TICK_MS,
      top: per
        .slice(0, 8)
        .map(([k, d]) => `${k} ${d * TICK_MS} ms`)
        .join(', '),
    },
  };
}

/** Pids of the Ceph daemons (radosgw, ceph-osd) of the RGW in `dir` (scripts/rgw.sh run/*.pid); [] if unknown. */
export function cephPids(dir: string | undefined): number[] {
  if (!dir) return [];
  const run = `${dir}/run`;
  let names: string[] = [];
  try {
    names = readdirSync(run).filter((n) => /^(client\.rgw\.|osd\.)[^/]*\.pid$/.test(n));
  } catch {
    return [];
  }
  return names.map((n) => Number(readFileSync(`${run}/${n}`, 'utf8').trim())).filter((p) => Number.isInteger(p) && p > 0);
}
