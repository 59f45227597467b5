// Filesystem usage for watermark triggers, computed the way df(1) does: blocks reserved
// for root count as unavailable, so "usage > 90%" means what the admin sees in `df`.
import { statfs } from 'node:fs/promises';

export interface Usage {
  percent: number; // 0..100
  usedBytes: number;
  totalBytes: number; // used + available to users
}

export function usageFromStatfs(s: { bsize: number; blocks: number; bfree: number; bavail: number }): Usage {
  const used = s.blocks - s.bfree;
  const denom = used + s.bavail;
  return {
    percent: denom === 0 ? 0 : (used / denom) * 100,
    usedBytes: used * s.bsize,
    totalBytes: denom * s.bsize,
  };
}

export async function fsUsage(path: string): Promise<Usage> {
  try {
    return usageFromStatfs(await statfs(path));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(`statfs ${path}: ${err.code ?? err.message}`, { cause: e });
  }
}

/** The fullest of several roots (a fileset may span filesystems): the one that decides a trigger. */
export async function maxUsage(roots: string[], probe: (p: string) => Promise<Usage> = fsUsage): Promise<{ root: string; usage: Usage } | null> {
  let best: { root: string; usage: Usage } | null = null;
  for (const root of roots) {
    const usage = await probe(root);
    if (!best || usage.percent > best.usage.percent) best = { root, usage };
  }
  return best;
}
