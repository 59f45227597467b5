// SIGHUP in the supervisor: the worker re-reads the policy files (reload.ts), and the
// one-daemon-per-filesystem locks (fs-lock.ts) follow them: a filesystem a reload adds is
// locked before the worker takes the new policies (refused, logged, when another daemon
// serves it: the previous policies keep running), and a filesystem no fileset names any
// more is let go once the worker took them.
//
// Invariants:
// - The worker never serves a fileset on a filesystem this daemon does not hold locked.
// - A rejected reload leaves the locks as they were.
// - The worker holds every lock too (sent over IPC), so an orphaned worker keeps them.
import type { ChildProcess } from 'node:child_process';
import type { Logger } from '../log.js';
import { FilesystemBusy, lockFilesystems, managedFilesystems, type FsLocks, type LockOwner } from './fs-lock.js';
import { parsePolicyFiles } from './policies.js';
import type { SupervisorMessage } from './worker-config.js';

export interface HupContext {
  policyFiles: string[];
  locks: FsLocks;
  owner: () => LockOwner;
  /** device -> fd number of its lock in the worker (what owner() reports). */
  lockFds: Record<string, number>;
  log: Logger;
  /** The serving worker, if any. */
  worker(): ChildProcess | null;
  /** Asks the worker to reload; true when it took the new policies. */
  askWorker(): Promise<boolean>;
}

export async function reloadWithLocks(h: HupContext): Promise<void> {
  const parsed = parsePolicyFiles(h.policyFiles);
  // Invalid files: the worker rejects them with the diagnostics; the locks stay.
  if (!parsed.ok) return void (await h.askWorker());
  const want = managedFilesystems(parsed.policies);
  const added = new Map([...want].filter(([dev]) => !h.locks.has(dev)));
  const dropped = [...h.locks.fds.keys()].filter((dev) => !want.has(dev));
  let fresh: FsLocks | null = null;
  if (added.size > 0) {
    try {
      fresh = await lockFilesystems(added, h.owner);
    } catch (e) {
      if (!(e instanceof FilesystemBusy)) throw e;
      h.log.error('reload rejected, the previous policies keep running', { op: 'reload', reason: e.message });
      return;
    }
  }
  if (!(await h.askWorker())) {
    fresh?.close();
    return;
  }
  const c = h.worker();
  if (fresh) {
    h.locks.merge(fresh);
    for (const dev of added.keys()) c?.send({ type: 'lock', dev } satisfies SupervisorMessage, fresh.server(dev));
  }
  for (const dev of dropped) {
    h.locks.release(dev);
    delete h.lockFds[String(dev)];
    c?.send({ type: 'unlock', dev } satisfies SupervisorMessage);
  }
  if (added.size + dropped.length > 0)
    h.log.info('filesystem locks follow the reload', { op: 'reload', locked: [...added.values()], released: dropped });
}
