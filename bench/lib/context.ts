// Sizes for one run, from --scale (1 = the sizes of issue 7: 1 GiB files, a 1M-file tree,
// 10k x 64 KiB + 4 x 1 GiB release set).
import { GiB } from './util.js';

export interface Ctx {
  scale: number;
  /** The large file of benchmarks 1, 2, 4 and 7. */
  bigSize: number;
  /** Scan tree; the memory comparison also scans a tree a tenth of it. */
  treeFiles: number;
  /** Benchmark 7: small files of 64 KiB and large files of bigSize. */
  smallFiles: number;
  largeFiles: number;
  /** Directory holding the compiled c-handler and preader (bench/run.sh builds them). */
  cbin: string;
  /** Repetitions for the short timings (first byte, warm reads, preads rounds). */
  reps: number;
}

export function makeCtx(scale: number, cbin: string): Ctx {
  if (!(scale > 0 && scale <= 1)) throw new Error(`--scale must be in (0, 1], got ${scale}`);
  const round4k = (n: number) => Math.max(4096, Math.round(n / 4096) * 4096);
  return {
    scale,
    bigSize: round4k(GiB * scale),
    // BENCH_TREE_FILES sets the scan tree alone (issue 14's 1M-file figure at a smaller scale).
    treeFiles: Number(process.env.BENCH_TREE_FILES) > 0 ? Math.round(Number(process.env.BENCH_TREE_FILES)) : Math.max(1000, Math.round(1_000_000 * scale)),
    smallFiles: Math.max(100, Math.round(10_000 * scale)),
    largeFiles: 4,
    cbin,
    reps: 5,
  };
}
