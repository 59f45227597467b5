// The daemon's final stop, in the order that keeps readers of released files from zeros
// (issue 12, items 2 and 4). Runs in the worker that serves the group, while it still
// serves: (1) files held open by readers are recalled whole (held-open.ts); (2) the
// steps registered with onBeforeGroupClose run (e.g. detaching the `backing` bind mount
// so that new opens find no released file); (3) the marks are flushed, so no event can
// arrive any more, and the events already queued are served; then the caller stops
// reading and the group can close without a reader waiting on it (close-group.ts).
//
// Invariant: only for the daemon's end. A worker replaced by another (restart, takeover)
// must not flush: the marks live on in the group for its successor.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Catalog } from '../engine/catalog.js';
import type { Logger } from '../log.js';
import type { RecallService } from '../recall/service.js';
import { flushMarks } from '../daemon/close-group.js';
import { findHeldOpen, serveHeldOpen } from './held-open.js';

/** How long the stop may spend recalling held-open files (logged at stop). */
export const STOP_RECALL_BUDGET_MS = 20_000;

export type BeforeGroupClose = (log: Logger) => Promise<void>;
const hooks: BeforeGroupClose[] = [];

/**
 * Registers a step that runs after held-open files were served and before the marks go
 * (the group still serves while it runs). A throw is logged; the stop goes on.
 */
export function onBeforeGroupClose(step: BeforeGroupClose): void {
  hooks.push(step);
}

export interface FinalStopDeps {
  groupFd: number;
  catalog: Catalog;
  recall: RecallService;
  log: Logger;
  /** Processes whose fds are ours (this worker, its supervisor). */
  ownPids: number[];
  budgetMs?: number;
}

/** Steps 1-3 above; the caller then stops the recall service and closes or hands back the group. */
export async function finalStop(d: FinalStopDeps): Promise<void> {
  const held = findHeldOpen(d.catalog.releasedFiles(), new Set(d.ownPids));
  await serveHeldOpen(held, d.budgetMs ?? STOP_RECALL_BUDGET_MS, d.log);
  for (const step of hooks) {
    try {
      await step(d.log);
    } catch (e) {
      d.log.error('stop: a step before the group closes failed', { err: e });
    }
  }
  try {
    flushMarks(d.groupFd);
  } catch (e) {
    d.log.error('stop: flushing the marks failed', { err: e });
  }
  await settle(d.recall);
}

/** Lets the service read and answer what was queued before the flush (nothing new comes). */
async function settle(recall: RecallService): Promise<void> {
  let quiet = 0;
  for (let i = 0; i < 250 && quiet < 3; i++) {
    await sleep(20);
    quiet = recall.stats().inFlight === 0 ? quiet + 1 : 0;
  }
}
