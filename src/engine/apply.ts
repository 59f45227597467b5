// One run of a policy file: scan -> evaluate -> plan -> execute, per policy, reporting
// JSON-serializable progress events (the daemon streams them over its socket).
// A dry run stops after planning: no object, no xattr, no block freed.
import { lstatSync, statfsSync } from 'node:fs';
import type { FilesetDecl, PolicyDecl, PolicyFile, Rule, Span } from '../dsl/ast.js';
import type { FileFacts, FsUsage } from './facts.js';
import { noDataMessage, planPolicy, type ActionKind, type PlannedAction, type SkipKind, type WatermarkState } from './plan.js';
import { selectFilesetBatches } from './scan.js';
import { recordedCtime } from './verify-copy.js';
import type { ExecDeps, OutcomeStatus } from './execute.js';

export interface ApplyOptions {
  policyFile: PolicyFile;
  /** Only this policy; all when absent. */
  policyName?: string;
  dryRun: boolean;
  now: number;
}

export interface ApplyDeps extends ExecDeps {
  /** Filesystem usage of a root (statfs); replaceable for tests of the pure path. */
  usage?: (root: string) => FsUsage;
  /** A reason to hold a decision back before planning (e.g. the daemon's recall cooldown). */
  holdBack?: (policy: PolicyDecl, file: FileFacts, rule: Rule | null) => boolean;
}

export interface ActionEvent {
  type: 'action';
  policy: string;
  path: string;
  absPath: string;
  size: number;
  /** Time since last access, ms. */
  ageMs: number;
  rule: string;
  span: Span;
  action: ActionKind;
  tier: string | null;
  /** 'planned' in a dry run. */
  status: OutcomeStatus | 'planned';
  uploaded: number;
  freed: number;
  message?: string;
}

export type ProgressEvent =
  | { type: 'policy'; policy: string; fileset: string; dryRun: boolean }
  | { type: 'scan-error'; policy: string; path: string; op: string; message: string }
  | { type: 'planned'; policy: string; scanned: number; actions: number; bytes: number; skipped: Record<SkipKind, number>; watermarks: WatermarkState[] }
  | ActionEvent
  | { type: 'done'; result: ApplyResult };

export interface Tally {
  files: number;
  bytes: number;
}

export interface PolicyResult {
  policy: string;
  scanned: number;
  planned: number;
  skipped: Record<SkipKind, number>;
  /** Held back before planning (deps.holdBack, e.g. the recall cooldown). */
  held: number;
  watermarks: WatermarkState[];
}

export interface ApplyResult {
  dryRun: boolean;
  policies: PolicyResult[];
  /** Per action kind: files and bytes planned (dry run) or done. */
  actions: Partial<Record<ActionKind, Tally>>;
  status: Record<OutcomeStatus | 'planned', number>;
  uploaded: number;
  freed: number;
  failures: { path: string; action: ActionKind; message: string }[];
  scanErrors: number;
}

export function statfsUsage(root: string): FsUsage {
  const s = statfsSync(root, { bigint: true });
  const used = (s.blocks - s.bfree) * s.bsize;
  return { dev: Number(lstatSync(root, { bigint: true }).dev), usedBytes: Number(used), availBytes: Number(s.bavail * s.bsize) };
}

export function selectPolicies(pf: PolicyFile, name?: string): PolicyDecl[] {
  if (name === undefined) return pf.policies;
  const p = pf.policies.find((x) => x.name === name);
  if (!p) throw new Error(`${pf.file}: no policy named "${name}" (policies: ${pf.policies.map((x) => x.name).join(', ') || 'none'})`);
  return [p];
}

/**
 * Runs `fn` over items in order of start, at most `slots` units in flight, an item costing
 * `cost(item)` units (at most `slots`). Resolves when all that started have ended; rejects
 * with the first failure, once the others in flight have ended.
 */
async function pool<T>(items: T[], slots: number, cost: (t: T) => number, fn: (t: T) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const running = new Set<Promise<void>>();
  let used = 0;
  let failure: { e: unknown } | null = null;
  for (let next = 0; next < items.length && !signal?.aborted && !failure; ) {
    const item = items[next]!;
    const c = Math.max(1, Math.min(slots, cost(item)));
    if (used + c > slots) {
      await Promise.race(running);
      continue;
    }
    next++;
    used += c;
    const p: Promise<void> = fn(item)
      .catch((e: unknown) => void (failure ??= { e }))
      .finally(() => {
        used -= c;
        running.delete(p);
      });
    running.add(p);
  }
  await Promise.all(running);
  if (failure) throw (failure as { e: unknown }).e;
}

// A run's transfers: `concurrency N` in the policy is N actions in flight, whatever their
// size. Unset: DEFAULT_SLOTS large files at once (rclone's 4 transfers), or up to
// SMALL_PER_SLOT times as many files that fit one PUT: a small file's time is the round
// trips and the per-file steps (open, mark, lease, record, punch), which overlap.
const DEFAULT_SLOTS = 4;
const SMALL_PER_SLOT = 4;
const SMALL_FILE = 1024 * 1024;

export async function runApply(
  opts: ApplyOptions,
  deps: ApplyDeps,
  progress: (e: ProgressEvent) => void = () => {},
  signal?: AbortSignal,
): Promise<ApplyResult> {
  const result: ApplyResult = {
    dryRun: opts.dryRun,
    policies: [],
    actions: {},
    status: { planned: 0, done: 0, skipped: 0, busy: 0, failed: 0 },
    uploaded: 0,
    freed: 0,
    failures: [],
    scanErrors: 0,
  };
  const usageOf = deps.usage ?? statfsUsage;
  const policies = selectPolicies(opts.policyFile, opts.policyName);
  // Real runs are recorded in the catalog (`tier report` shows the last ones).
  const runId = deps.catalog && !opts.dryRun ? deps.catalog.startRun(opts.policyFile.file, opts.policyName ?? null, false, Date.now()) : undefined;
  for (const policy of policies) {
    if (signal?.aborted) break;
    const fileset = opts.policyFile.filesets.find((f) => f.name === policy.fileset);
    if (!fileset) throw new Error(`${policy.span.file}:${policy.span.line}:${policy.span.col}: policy "${policy.name}": unknown fileset "${policy.fileset}"`);
    progress({ type: 'policy', policy: policy.name, fileset: fileset.name, dryRun: opts.dryRun });
    const plan = await planOne(policy, fileset, opts.now, deps, usageOf, progress, result);
    const actionBytes = plan.actions.reduce((s, a) => s + a.file.size, 0);
    progress({ type: 'planned', policy: policy.name, scanned: plan.scanned, actions: plan.actions.length, bytes: actionBytes, skipped: plan.skipped, watermarks: plan.watermarks });
    result.policies.push({ policy: policy.name, scanned: plan.scanned, planned: plan.actions.length, skipped: plan.skipped, held: plan.held, watermarks: plan.watermarks });

    const report = (a: PlannedAction, status: ActionEvent['status'], uploaded: number, freed: number, message?: string) => {
      result.status[status]++;
      if (status === 'planned' || status === 'done') {
        const t = (result.actions[a.kind] ??= { files: 0, bytes: 0 });
        t.files++;
        t.bytes += a.file.size;
      }
      if (status === 'failed') result.failures.push({ path: a.file.absPath, action: a.kind, message: message ?? 'failed' });
      result.uploaded += uploaded;
      result.freed += freed;
      const ev: ActionEvent = {
        type: 'action',
        policy: policy.name,
        path: a.file.path,
        absPath: a.file.absPath,
        size: a.file.size,
        ageMs: opts.now - a.file.atimeMs,
        rule: a.reason.rule,
        span: a.reason.span,
        action: a.kind,
        tier: a.tier ?? null,
        status,
        uploaded,
        freed,
      };
      if (message !== undefined) ev.message = message;
      progress(ev);
    };
    for (const a of plan.noData) report(a, 'skipped', 0, 0, noDataMessage(a.file));
    if (opts.dryRun) {
      for (const a of plan.actions) report(a, 'planned', 0, a.freed);
      continue;
    }
    // Loaded only for a real run: a dry run needs none of the executor's modules (SQLite, tiers).
    const { runAction } = await import('./actions.js');
    const perSlot = policy.concurrency === undefined ? SMALL_PER_SLOT : 1;
    const slots = (policy.concurrency ?? DEFAULT_SLOTS) * perSlot;
    // One inode once per run: two names of a hard-linked file migrating at once would open
    // it under our own lease and stall both for lease-break-time (45 s, then F_UNLCK fails
    // with EAGAIN; test/reliability/hostile.test.ts).
    const seen = new Set<string>();
    await pool(
      plan.actions,
      slots,
      (a) => (a.file.size <= SMALL_FILE ? 1 : perSlot),
      async (a) => {
        const id = `${a.file.dev}:${a.file.ino}`;
        if (seen.has(id)) return report(a, 'skipped', 0, 0, 'another name of this file (hard link) was handled in this run');
        seen.add(id);
        const out = await runAction(a, deps, signal);
        report(a, out.status, out.uploaded, out.freed, out.message);
      },
      signal,
    );
  }
  if (runId !== undefined) {
    const { done, busy, skipped, failed } = result.status;
    deps.catalog!.finishRun(runId, { done, busy, skipped, failed, actions: result.actions, uploaded: result.uploaded, freed: result.freed }, Date.now());
  }
  progress({ type: 'done', result });
  return result;
}

async function planOne(
  policy: PolicyDecl,
  fileset: FilesetDecl,
  now: number,
  deps: ApplyDeps,
  usageOf: (root: string) => FsUsage,
  progress: (e: ProgressEvent) => void,
  result: ApplyResult,
) {
  const decisions: { file: FileFacts; rule: Rule | null }[] = [];
  let scanned = 0;
  let held = 0;
  let unmatched = 0;
  let kept = 0;
  const onError = (e: { path: string; op: string; error: Error }) => {
    result.scanErrors++;
    progress({ type: 'scan-error', policy: policy.name, path: e.path, op: e.op, message: e.error.message });
  };
  // Each file is decided by evaluate() in the walk threads (scan.ts): unmatched and kept
  // files are only counted there, so memory grows with the candidates, not the tree.
  for await (const b of selectFilesetBatches(fileset, policy, now, { onError })) {
    scanned += b.files.length + b.unmatched + b.kept;
    unmatched += b.unmatched;
    kept += b.kept;
    for (let i = 0; i < b.files.length; i++) decide(b.files[i]!, b.rules[i]!);
  }
  function decide(file: FileFacts, rule: Rule): void {
    if (deps.holdBack?.(policy, file, rule)) {
      held++;
      return;
    }
    // Size and mtime can be put back after a rewrite; ctime cannot (verify-copy.ts).
    if (file.state === 'archived' && deps.catalog) file.copyUnverified = recordedCtime(deps.catalog, file.dev, file.ino) !== file.ctimeNs;
    decisions.push({ file, rule });
  }
  const usage = new Map<number, FsUsage>();
  for (const root of fileset.roots) {
    try {
      const u = usageOf(root);
      usage.set(u.dev, u);
    } catch (e) {
      onError({ path: root, op: 'statfs', error: e as Error });
    }
  }
  const plan = planPolicy(policy, decisions, [...usage.values()]);
  plan.skipped.unmatched += unmatched;
  plan.skipped.keep += kept;
  return { ...plan, scanned, held };
}
