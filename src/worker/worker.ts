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
import { followRecall } from './follow-recall.js';
import { DaemonOps } from './daemon-ops.js';
import { markFoundReleased } from '../reconcile/reconcile-mark.js';
import { ControlServer } from './control-server.js';
import { makeHandlers, runApplyRequest, type WorkerState } from './handlers.js';
import { filesetRoots, loadPolicies } from '../daemon/policies.js';
import { reloadPolicies } from './reload.js';
import { socketPath } from '../daemon/protocol.js';
import { placeMarks } from './watch-filesets.js';
import { bindBackings, detachBackings, prepareBackings, throughBacking } from '../daemon/backing.js';
import { closeGroup } from '../daemon/close-group.js';
import { finalStop, onBeforeGroupClose } from './stop-sequence.js';
import { serveInheritedLocks, serveSentLock, type LockOwner } from '../daemon/fs-lock.js';
import type { Server } from 'node:net';
import { HEARTBEAT_MS, type WorkerConfig, type WorkerMessage } from '../daemon/worker-config.js';

/** A reason the worker cannot start that is the user's to fix (no stack trace). */
export class StartError extends Error {}

export interface RunningWorker {
  /**
   * final: the daemon ends (held-open files recalled, marks flushed: stop-sequence.ts);
   * otherwise this worker only makes way for another (restart), marks stay.
   * closeGroup: this process is the group's last holder (no supervisor): close it safely.
   */
  stop(o?: { final?: boolean; closeGroup?: boolean }): Promise<void>;
  /** SIGHUP: re-read the policy files; false (logged) when they were rejected. */
  reload(): boolean;
  /** A reload added a filesystem: hold its lock too (bound by the supervisor); its fd here. */
  lock(dev: number, server: Server): number;
  /** A reload dropped a filesystem: let its lock go. */
  unlock(dev: number): void;
}

export interface WorkerHooks {
  /** Resolves on the supervisor's `serve` (standby workers: takeover.ts). */
  serve?: Promise<void>;
  /** This worker handed the group over to a new daemon (its answer is sent): leave now. */
  handedOver?(): void;
}

export async function runWorker(
  cfg: WorkerConfig,
  log: Logger,
  send: (m: WorkerMessage, then?: () => void) => void,
  hooks: WorkerHooks = {},
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
    processMetrics: true,
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
    onComplete: (dev, ino, record) => {
      followRecall(catalog, dev, ino, record, log);
      ops.catalogChanged(); // the next scrape reads the state totals afresh
    },
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
  if (cfg.standby) {
    // Takeover: the old daemon's worker still reads the group. Only one reader at a time
    // (responses are matched by fd number): wait until it has handed over.
    send({ type: 'standby' });
    await hooks.serve;
    log.info('serving the group taken over from the previous daemon');
  }
  await recall.start();

  {
    const t0 = Date.now();
    // The roots are not bound yet: open each file through its backing. Filesystem marks
    // where allowed, inode marks for the released files of the rest (watch-filesets.ts).
    const filesets = filesetRoots(state.policies).map((root) => ({ root, openAt: throughBacking(root, cfg.backings) }));
    const rows = function* (covered: readonly string[]) {
      for (const r of catalog.releasedFilesOutside(covered)) yield { ...r, openPath: throughBacking(r.path, cfg.backings) };
    };
    const placed = placeMarks(recall.marks, filesets, rows, (fd) => recall.markReleased(fd), cfg.freshGroup, log, [cfg.stateDir]);
    state.startup = placed;
    log.info(placed.inherited && placed.filesystems === 0 ? 'marks inherited from the previous worker' : 'start-up marks placed', { ...placed, ms: Date.now() - t0 });
  }
  // Every released file is marked: show the filesystems at their roots. Before change
  // tracking and reconcile start, which work on the roots.
  try {
    bindBackings(cfg.backings, log);
  } catch (e) {
    throw new StartError(`cannot bind a backing onto its root: ${(e as Error).message}`);
  }
  // Stop step "detach roots": after held-open files were served, before the marks go, so a
  // new open finds an empty root (ENOENT) rather than a file no group marks (zeros).
  onBeforeGroupClose(async (l) => detachBackings(cfg.backings, l));

  const server: ControlServer = new ControlServer(
    socketPath(cfg.stateDir),
    makeHandlers(state, () => server.activeRequests),
    log,
  );
  control = server;
  await server.listen();
  // Answer "who serves this filesystem" on the inherited locks too: after a supervisor
  // death this process alone holds them (and the group).
  const lockFds = cfg.lockFds ?? {};
  const lockOwner = (): LockOwner => ({
    supervisorPid: process.connected ? (cfg.supervisorPid ?? null) : null,
    workerPid: process.pid,
    stateDir: cfg.stateDir,
    groupFd: cfg.groupFd,
    mode: cfg.mode,
    lockFds,
  });
  const lockServers = serveInheritedLocks(lockFds, lockOwner);
  server.handover = {
    // A new daemon took the group (takeover.ts): stop reading it, every event read
    // answered. Nothing else is stopped here: closing the change tracker's group waits
    // until every reader blocked on our group is answered (worker-process.ts), which
    // only the new worker can do once it reads; so we leave by exiting after the answer,
    // and the kernel closes the tracker then. A release cut short by that exit is safe
    // (docs/engine.md: every step survives a kill).
    async prepare() {
      clearInterval(heartbeat);
      await new Promise<void>((r) => send({ type: 'handing-over' }, r));
      lockServers.close();
      await recall.stop();
      log.info('handed the group over to a new daemon');
    },
    done: () => hooks.handedOver?.(),
  };
  await ops.start();
  send({ type: 'ready', marked: state.startup.marked, skipped: state.startup.skipped });
  const heartbeat = setInterval(() => send({ type: 'alive' }), HEARTBEAT_MS);

  return {
    reload: () => reloadPolicies(state, log),
    lock(dev, server) {
      const fd = serveSentLock(lockServers, dev, server, lockOwner);
      lockFds[String(dev)] = fd;
      return fd;
    },
    unlock(dev) {
      lockServers.release(dev);
      delete lockFds[String(dev)];
    },
    async stop(o = {}) {
      clearInterval(heartbeat);
      await server.close();
      lockServers.close();
      if (o.final) {
        await ops.stopReconcile(); // before the roots are detached (daemon-ops.ts)
        await finalStop({ groupFd: cfg.groupFd, catalog, recall, log, ownPids: [process.pid, cfg.supervisorPid ?? process.ppid] });
      }
      await recall.stop();
      if (o.closeGroup) closeGroup(cfg.groupFd, log);
      // Closing the change tracker's group can wait on events pending in ours (see
      // worker-process.ts): the supervisor answers those from now on.
      send({ type: 'quiesced' });
      await ops.stop();
      catalog.close();
      await views.close();
    },
  };
}
