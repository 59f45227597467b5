// The worker: everything the daemon does that can crash. It gets the fanotify group as
// fd 3 from the supervisor and, in this order: loads the policies (refusing to start on
// errors), opens the tiers (each behind its rate limiter: recalls interactive, runs and
// gc batch), the catalog and the recall log, starts the recall service
// (which first answers what a dead predecessor left, then serves), marks every
// released/partial file the catalog knows (first worker of a group only; through the
// filesets' backings), binds each backing onto its root (backing.ts), opens the control
// socket, starts the schedules, and only then tells the supervisor `ready`.
// Stops on SIGTERM from the supervisor; SIGINT is the supervisor's to handle.
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { RecallService } from '../recall/service.js';
import { openCatalog } from '../engine/catalog.js';
import { DaemonOps } from '../ops/daemon-ops.js';
import { markFoundReleased } from '../ops/reconcile-mark.js';
import { ControlServer } from './control-server.js';
import { makeHandlers, runApplyRequest, type WorkerState } from './handlers.js';
import { filesetRoots, loadPolicies } from './policies.js';
import { reloadPolicies } from './reload.js';
import { socketPath } from './protocol.js';
import { markReleasedFiles } from './startup-marks.js';
import { bindBackings, prepareBackings, throughBacking } from './backing.js';
import { HEARTBEAT_MS, type WorkerConfig, type WorkerMessage } from './worker-config.js';

/** A reason the worker cannot start that is the user's to fix (no stack trace). */
export class StartError extends Error {}

export interface RunningWorker {
  stop(): Promise<void>;
  /** SIGHUP: re-read the policy files; false (logged) when they were rejected. */
  reload(): boolean;
}

export async function runWorker(
  cfg: WorkerConfig,
  log: Logger,
  send: (m: WorkerMessage) => void,
): Promise<RunningWorker> {
  const loaded = await loadPolicies(cfg.policyFiles);
  if (!loaded.ok) throw new StartError(loaded.message);
  const { tiers: views, settings } = loaded;
  if (cfg.freshGroup) {
    const problems = prepareBackings(cfg.backings, log);
    if (problems.length > 0) throw new StartError(`cannot gate the roots:\n${problems.join('\n')}`);
  }
  const tiers = views.batch; // engine and gc; recalls go through views.interactive
  const catalog = openCatalog(join(cfg.stateDir, 'catalog.db'));
  let control: ControlServer | null = null;
  // Scheduler, recall log (tier report, anti-thrash cool-down) and metrics.
  const ops: DaemonOps = new DaemonOps({
    stateDir: cfg.stateDir,
    policies: loaded.policies,
    log,
    runPolicy: (file, policy, trigger) =>
      runApplyRequest(
        state,
        { policyFile: file, policy, dryRun: false },
        (event) => log.debug('scheduled run progress', { op: 'apply', trigger: trigger.kind, event }),
        new AbortController().signal,
        state.policies.find((pf) => pf.file === file),
      ),
    metricsListen: cfg.metricsListen,
    reconcileIntervalMs: cfg.reconcileIntervalMs,
    markFound: async (path, expect) => {
      // Beneath the filesets in force, the inode reconcile saw (kernel/beneath.ts).
      if (await markFoundReleased(path, (fd) => recall.markReleased(fd), expect, filesetRoots(state.policies))) log.info('released file found by reconcile: marked', { op: 'reconcile', path });
    },
    gcTiers: tiers,
    catalog,
    queueDepth: (): Record<string, number> => ({ recall: recall.stats().inFlight, control: control?.activeRequests ?? 0 }),
    throttleWaits: () => views.throttleWaits(),
  });
  const recall: RecallService = new RecallService({
    groupFd: cfg.groupFd,
    mode: cfg.mode,
    tiers: views.interactive,
    settings,
    inflightPath: cfg.inflightPath,
    log,
    onRecall: ops.onRecall,
  });
  const state: WorkerState = {
    cfg,
    tiers,
    views,
    policies: loaded.policies,
    catalog,
    recall,
    log,
    startup: { marked: 0, skipped: 0, inherited: !cfg.freshGroup },
    startedAt: Date.now(),
    ops,
  };
  await recall.start();

  if (cfg.freshGroup) {
    const t0 = Date.now();
    // The roots are not bound yet: open each file through its backing.
    const rows = (function* () {
      for (const r of catalog.releasedFiles()) yield { ...r, openPath: throughBacking(r.path, cfg.backings) };
    })();
    const roots = filesetRoots(state.policies).map((r) => throughBacking(r, cfg.backings));
    state.startup = markReleasedFiles(rows, (fd) => recall.markReleased(fd), log, roots);
    log.info('start-up marks placed', { ...state.startup, ms: Date.now() - t0 });
  } else log.info('marks inherited from the previous worker');
  // Every released file is marked: show the filesystems at their roots. Before change
  // tracking and reconcile start, which work on the roots.
  try {
    bindBackings(cfg.backings, log);
  } catch (e) {
    throw new StartError(`cannot bind a backing onto its root: ${(e as Error).message}`);
  }

  const server: ControlServer = new ControlServer(
    socketPath(cfg.stateDir),
    makeHandlers(state, () => server.activeRequests),
    log,
  );
  control = server;
  await server.listen();
  await ops.start();
  send({ type: 'ready', marked: state.startup.marked, skipped: state.startup.skipped });
  const heartbeat = setInterval(() => send({ type: 'alive' }), HEARTBEAT_MS);

  return {
    reload: () => reloadPolicies(state, log),
    async stop() {
      clearInterval(heartbeat);
      await server.close();
      await recall.stop();
      // Closing the change tracker's group can wait on events pending in ours (see
      // worker-process.ts): the supervisor answers those from now on.
      send({ type: 'quiesced' });
      await ops.stop();
      catalog.close();
      await views.close();
    },
  };
}
