// The worker: everything the daemon does that can crash. It gets the fanotify group as
// fd 3 from the supervisor and, in this order: loads the policies (refusing to start on
// errors), opens the tiers and the catalog, starts the recall service (which first
// answers what a dead predecessor left, then serves), marks every released/partial file
// the catalog knows, opens the control socket, and only then tells the supervisor
// `ready`. Stops on SIGTERM from the supervisor; SIGINT is the supervisor's to handle.
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { RecallService } from '../recall/service.js';
import { openCatalog } from '../engine/catalog.js';
import { RecallLog, recallLogPath } from '../ops/recall-log.js';
import { ControlServer } from './control-server.js';
import { makeHandlers, type WorkerState } from './handlers.js';
import { loadPolicies } from './policies.js';
import { socketPath } from './protocol.js';
import { markReleasedFiles, type MarkResult } from './startup-marks.js';
import { HEARTBEAT_MS, type WorkerConfig, type WorkerMessage } from './worker-config.js';

/** A reason the worker cannot start that is the user's to fix (no stack trace). */
export class StartError extends Error {}

export interface RunningWorker {
  stop(): Promise<void>;
}

export async function runWorker(
  cfg: WorkerConfig,
  log: Logger,
  send: (m: WorkerMessage) => void,
): Promise<RunningWorker> {
  const loaded = await loadPolicies(cfg.policyFiles);
  if (!loaded.ok) throw new StartError(loaded.message);
  const { tiers, settings } = loaded;
  const catalog = openCatalog(join(cfg.stateDir, 'catalog.db'));
  // The recall log feeds `tier report` and the anti-thrash cool-down; a row per recall
  // that fetched data or failed (buffered, flushed in batches).
  const recallLog = new RecallLog(recallLogPath(cfg.stateDir));
  const recall = new RecallService({
    groupFd: cfg.groupFd,
    mode: cfg.mode,
    tiers,
    settings,
    inflightPath: cfg.inflightPath,
    log,
    onRecall: (r) =>
      recallLog.record({ time: r.time, path: r.path, bytes: r.bytes, latencyMs: r.latencyMs, comm: r.comm, pid: r.pid, error: r.error }),
  });
  await recall.start();

  let startup: MarkResult = { marked: 0, skipped: 0, inherited: true };
  if (cfg.freshGroup) {
    startup = markReleasedFiles(catalog.releasedFiles(), (fd) => recall.markReleased(fd), log);
    log.info('start-up marks placed', { ...startup });
  } else log.info('marks inherited from the previous worker');

  const state: WorkerState = { cfg, tiers, policies: loaded.policies, catalog, recall, log, startup, startedAt: Date.now() };
  const control: ControlServer = new ControlServer(
    socketPath(cfg.stateDir),
    makeHandlers(state, () => control.activeRequests),
    log,
  );
  await control.listen();
  send({ type: 'ready', marked: startup.marked, skipped: startup.skipped });
  const heartbeat = setInterval(() => send({ type: 'alive' }), HEARTBEAT_MS);

  return {
    async stop() {
      clearInterval(heartbeat);
      await control.close();
      await recall.stop();
      recallLog.close();
      catalog.close();
      await Promise.allSettled([...tiers.values()].map((t) => t.close()));
    },
  };
}
