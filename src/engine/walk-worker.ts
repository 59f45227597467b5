// Worker thread of the scan (scan.ts starts one per core for each fileset root, each its part): runs walk.ts and posts its
// batches (their buffers transferred, not copied). At most MAX_IN_FLIGHT batches wait for the
// main thread (ctl[0] counts them; the main thread takes one off and notifies), so memory
// stays flat when planning is slower than the walk. ctl[1] = 1 asks it to stop: the walk's
// finally blocks close its directory fds before the thread ends.
// With `select` (a policy run) the thread decides each file with evaluate() (walk.ts).
import { parentPort, workerData } from 'node:worker_threads';
import type { PolicyDecl } from '../dsl/ast.js';
import type { FileFacts } from './facts.js';
import { evaluate } from './evaluate.js';
import { KEPT, UNMATCHED, walkRoot, type Packed, type Selector, type WalkPart } from '../walk/walk.js';
import { globMatcher } from '../walk/glob.js';

export interface WalkJob {
  root: string;
  include: string[];
  exclude: string[];
  /** [in flight, stop] of this thread. */
  ctl: Int32Array;
  /** This thread's share of the root's files (walk.ts). */
  part: WalkPart;
  /** Decide each file by this policy at `now`; pack only those a rule acts on. */
  select?: { policy: PolicyDecl; now: number };
}

export type WalkMessage = { type: 'batch'; batch: Packed } | { type: 'done' } | { type: 'fatal'; message: string; code?: string };

const MAX_IN_FLIGHT = 4;
const never = () => false;
const anyOf = (globs: string[]) => (globs.length === 0 ? never : globMatcher(globs));

/** evaluate() over the walk's FileView (it reads only what a FileFacts has under the same names). */
function selector(policy: PolicyDecl, now: number): Selector {
  const index = new Map(policy.rules.map((r, i) => [r, i]));
  return (v) => {
    const rule = evaluate(policy, v as unknown as FileFacts, now);
    if (!rule) return UNMATCHED;
    return rule.action.kind === 'keep' ? KEPT : index.get(rule)!;
  };
}

function run(job: WalkJob): void {
  const { ctl } = job;
  // A directory is pruned when an exclude matches it, or matches it with its trailing `/**` dropped.
  const filter = {
    included: job.include.length === 0 ? () => true : anyOf(job.include),
    excluded: anyOf(job.exclude),
    pruned: anyOf(job.exclude.flatMap((g) => (g.endsWith('/**') ? [g, g.slice(0, -3)] : [g]))),
  };
  try {
    const select = job.select ? selector(job.select.policy, job.select.now) : undefined;
    for (const batch of walkRoot(job.root, filter, 1024, job.part, select)) {
      for (let n = Atomics.load(ctl, 0); n >= MAX_IN_FLIGHT && Atomics.load(ctl, 1) === 0; n = Atomics.load(ctl, 0)) Atomics.wait(ctl, 0, n, 1000);
      if (Atomics.load(ctl, 1) !== 0) return;
      Atomics.add(ctl, 0, 1);
      parentPort!.postMessage({ type: 'batch', batch } satisfies WalkMessage, [batch.words.buffer as ArrayBuffer, batch.bytes.buffer as ArrayBuffer]);
    }
    parentPort!.postMessage({ type: 'done' } satisfies WalkMessage);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    parentPort!.postMessage({ type: 'fatal', message: err?.message ?? String(e), ...(err?.code ? { code: err.code } : {}) } satisfies WalkMessage);
  }
}

run(workerData as WalkJob);
