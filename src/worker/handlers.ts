// What the control socket's endpoints do inside the worker: status from the recall
// service, apply and the manual actions through the engine, with the daemon's own tiers
// (the ones the recall service fetches from) and marks through the recall service.
import type { PolicyFile } from '../dsl/ast.js';
import type { Logger } from '../log.js';
import type { Tier } from '../tiers/tier.js';
import type { RecallService } from '../recall/service.js';
import type { Catalog } from '../engine/catalog.js';
import { migrate, type ExecDeps, type Outcome, type OutcomeStatus } from '../engine/execute.js';
import { runApply, type ApplyResult, type ProgressEvent } from '../engine/apply.js';
import { recallFile } from '../engine/actions.js';
import { leaseSafeMarker } from '../engine/marker.js';
import { cooldownHoldBack } from '../schedule/cooldown.js';
import { RequestError, type ControlHandlers } from './control-server.js';
import { filesetRoots, parsePolicyFiles, sameTier } from '../daemon/policies.js';
import type { ApplyRequest, DaemonStatus } from '../daemon/protocol.js';
import { runImportRequest } from './import-handler.js';
import type { MarkResult } from './startup-marks.js';
import type { WorkerConfig } from '../daemon/worker-config.js';
import type { DaemonOps } from './daemon-ops.js';
import type { DaemonTiers } from '../daemon/tier-views.js';

export interface WorkerState {
  cfg: WorkerConfig;
  /** The batch views of the daemon's tiers (views.batch): migration and gc traffic. */
  tiers: Map<string, Tier>;
  /** Both views and the limiters (the recall service has views.interactive). */
  views: DaemonTiers;
  policies: PolicyFile[];
  catalog: Catalog;
  recall: RecallService;
  log: Logger;
  startup: MarkResult;
  startedAt: number;
  /** Scheduler, recall log, metrics, gc, reconcile and change tracking (daemon-ops.ts). */
  ops: DaemonOps;
}

export function makeHandlers(s: WorkerState, activeRequests: () => number): ControlHandlers {
  return {
    status(): DaemonStatus {
      return {
        pid: process.pid,
        supervisorPid: process.ppid,
        mode: s.cfg.mode,
        startedAt: s.startedAt,
        policyFiles: s.cfg.policyFiles,
        stateDir: s.cfg.stateDir,
        startup: s.startup,
        recall: { ...s.recall.stats() },
        activeRequests: activeRequests(),
      };
    },
    metrics: () => s.ops.metricsText(),
    apply: (req, progress, signal) => runApplyRequest(s, req, progress, signal),
    async reconcile(req, _progress, signal) {
      let roots: string[] | undefined;
      if (req.policyFiles?.length) {
        const parsed = parsePolicyFiles(req.policyFiles);
        if (!parsed.ok) throw new RequestError(parsed.message);
        roots = [...new Set(parsed.policies.flatMap((pf) => pf.filesets.flatMap((f) => f.roots)))];
      }
      return s.ops.reconcile({ ...(roots ? { roots } : {}), dryRun: req.dryRun, hash: req.hash }, signal);
    },
    import: (req, progress, signal) => runImportRequest(s, loadForRequest(s, req.policyFile), req, progress, signal),
    async manual(op, req, progress, signal) {
      const deps = execDeps(s);
      const counts: Record<OutcomeStatus, number> = { done: 0, skipped: 0, busy: 0, failed: 0 };
      const failures: { path: string; message: string }[] = [];
      for (const path of req.paths) {
        if (signal.aborted) break;
        let out: Outcome;
        if (op === 'recall') out = await recallFile(path, deps, signal);
        else out = await migrate(path, tierFor(s, req.tier), op, deps);
        counts[out.status]++;
        s.ops.observeMigration(op, out.status);
        if (out.status === 'failed') failures.push({ path, message: out.message ?? 'failed' });
        progress({ path, op, ...out });
      }
      return { op, ...counts, failures };
    },
  };
}

/** One policy run inside the daemon: from `tier apply` over the socket, or the scheduler. */
export async function runApplyRequest(
  s: WorkerState,
  req: ApplyRequest,
  progress: (event: unknown) => void,
  signal: AbortSignal,
  /** Scheduled runs: the policy file in force, not what is on disk now (SIGHUP may have rejected it). */
  loaded?: PolicyFile,
): Promise<ApplyResult> {
  const pf = loaded ?? loadForRequest(s, req.policyFile);
  if (req.policy !== undefined && !pf.policies.some((p) => p.name === req.policy))
    throw new RequestError(`${pf.file}: no policy named "${req.policy}" (policies: ${pf.policies.map((p) => p.name).join(', ') || 'none'})`);
  const now = req.now ?? Date.now();
  return runApply(
    { policyFile: pf, dryRun: req.dryRun, now, ...(req.policy !== undefined ? { policyName: req.policy } : {}) },
    {
      ...execDeps(s),
      // Anti-thrash: no release of a file recalled within its policy's cooldown.
      holdBack: cooldownHoldBack((since) => s.ops.recallLog.recalledSince(since), now),
    },
    (e: ProgressEvent) => {
      if (e.type === 'action' && e.status !== 'planned') s.ops.observeMigration(e.action, e.status);
      progress(e);
    },
    signal,
  );
}

/** The engine's dependencies inside the daemon: its tiers, catalog and lease-safe marks. */
function execDeps(s: WorkerState): ExecDeps {
  // Paths given by hand must lie beneath one of the daemon's filesets (kernel/beneath.ts).
  return { roots: filesetRoots(s.policies), tiers: s.tiers, catalog: s.catalog, marker: leaseSafeMarker(s.cfg.groupFd, s.cfg.mode, s.recall), log: s.log };
}

/**
 * Parses a policy file sent with a request. Its tiers must be ones this daemon serves,
 * declared the same way: a file released to a tier the recall service does not know could
 * never be read back.
 */
export function loadForRequest(s: WorkerState, file: string): PolicyFile {
  const parsed = parsePolicyFiles([file]);
  if (!parsed.ok) throw new RequestError(parsed.message);
  const pf = parsed.policies[0]!;
  const known = new Map(s.policies.flatMap((p) => p.tiers.map((t) => [t.name, t] as const)));
  for (const t of pf.tiers) {
    const mine = known.get(t.name);
    if (!mine || !sameTier(mine, t))
      throw new RequestError(
        `${t.span.file}:${t.span.line}:${t.span.col}: tier "${t.name}" is not served by this daemon ` +
          `(started with ${s.cfg.policyFiles.join(', ')}); restart it with this policy file`,
        409,
      );
  }
  return pf;
}

/** The tier a manual archive/release goes to: the one named, or the daemon's only tier. */
function tierFor(s: WorkerState, name: string | undefined): string {
  if (name !== undefined) {
    if (!s.tiers.has(name)) throw new RequestError(`unknown tier "${name}" (this daemon serves: ${[...s.tiers.keys()].join(', ')})`);
    return name;
  }
  if (s.tiers.size === 1) return [...s.tiers.keys()][0]!;
  throw new RequestError(`several tiers (${[...s.tiers.keys()].join(', ')}): say which with --tier`);
}
