// What a supervisor must hold before it starts a worker: the state dir (daemon.pid), the
// lock of every filesystem its policies manage (fs-lock.ts), and a fanotify group: a new
// one, or the running daemon's (takeover.ts) when the running one is an orphaned worker
// (its supervisor was killed) or when --takeover asks for it. Anything else that holds one
// of those filesystems is refused with a message naming it.
import { chmodSync, closeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { answerStaleEvents } from './stale-events.js';
import { denyQueued } from './close-group.js';
import { groupFromFdStore } from './fd-store.js';
import { createGroup, type GroupMode } from '../kernel/fanotify.js';
import type { Logger } from '../log.js';
import { adoptLocks, devName, FilesystemBusy, lockFilesystems, managedFilesystems, type FsLocks, type LockOwner } from './fs-lock.js';
import { parsePolicyFiles } from './policies.js';
import { lockStateDir, StateDirBusy } from './state-lock.js';
import { runningOwner, takeFds, type Taken } from './takeover.js';

/** A reason the daemon cannot start, for the user (no stack trace). */
export class CannotStart extends Error {}

export interface Acquired {
  unlock(): void;
  locks: FsLocks;
  groupFd: number;
  mode: GroupMode;
  /** Set when the group was taken from a running daemon: it serves until it hands over. */
  taken: Taken | null;
  /** The group came back from systemd's fd store (fd-store.ts): marks kept, stale events possible. */
  restored: boolean;
}

export interface AcquireOptions {
  policyFiles: string[];
  stateDir: string;
  takeover: boolean;
  log: Logger;
  /** What this daemon answers on its locks. */
  owner(): LockOwner;
}

export async function acquire(o: AcquireOptions): Promise<Acquired> {
  mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  chmodSync(o.stateDir, 0o700);
  const parsed = parsePolicyFiles(o.policyFiles);
  // Unparsable policy files: no locks here, the worker reports the diagnostics and fails.
  const devs = parsed.ok ? managedFilesystems(parsed.policies) : new Map<number, string>();

  let taken: Taken | null = null;
  const stored = groupFromFdStore();
  const running = await runningOwner(devs);
  if (running && stored) closeSync(stored.fd); // a live daemon's group wins
  if (running) {
    const { owner, dev, dir } = running;
    const orphan = owner.supervisorPid === null;
    if (!orphan && !o.takeover) throw new CannotStart(new FilesystemBusy(owner, dir, dev).message);
    if (owner.stateDir !== o.stateDir) {
      const who = orphan ? `the worker (pid ${owner.workerPid}) of a tier daemon whose supervisor died` : `a tier daemon (pid ${owner.supervisorPid})`;
      throw new CannotStart(
        `${who}, state dir ${owner.stateDir}, serves the filesystem of ${dir} (dev ${devName(dev)}); ` +
          `a takeover keeps its state: start with --state-dir ${owner.stateDir}`,
      );
    }
    try {
      taken = takeFds(owner);
    } catch (e) {
      throw new CannotStart(`cannot take over the running daemon (worker pid ${owner.workerPid}): ${(e as Error).message}`);
    }
    o.log.info(orphan ? 'taking over the worker of a daemon whose supervisor died' : 'taking over the running daemon', {
      workerPid: owner.workerPid,
      supervisorPid: owner.supervisorPid,
    });
  }

  if (stored && !running) {
    // The old daemon's processes are dead or dying (none answers on the locks). A dying
    // worker can hang in exit, closing its other fanotify group, until the events it read
    // are answered, and holds our locks meanwhile: answer them now (nobody reads this group).
    const stale = answerStaleEvents(stored.fd, join(o.stateDir, 'inflight'), o.log);
    if (stale.answered > 0) o.log.warn('answered stale events of the previous daemon with EIO', { count: stale.answered });
  }

  let unlock: () => void;
  try {
    unlock = lockStateDir(o.stateDir, taken !== null);
  } catch (e) {
    if (e instanceof StateDirBusy) throw new CannotStart(e.message);
    throw e;
  }
  let locks: FsLocks;
  try {
    const adopted = new Map([...(taken?.lockFds ?? new Map<number, number>())].filter(([dev]) => devs.has(dev)));
    const rest = new Map([...devs].filter(([dev]) => !adopted.has(dev)));
    const a = adoptLocks(adopted, o.owner);
    // A restored group has no reader until our worker starts: answer what queues on it
    // meanwhile (a dying old worker's exit can wait on those readers, holding the locks).
    const b = await lockWithRetry(rest, o.owner, stored && !running ? () => denyQueued(stored.fd, o.log) : () => {});
    locks = a.merge(b);
  } catch (e) {
    unlock();
    if (e instanceof FilesystemBusy) throw new CannotStart(e.message);
    throw e;
  }
  if (taken) return { unlock, locks, groupFd: taken.groupFd, mode: taken.mode, taken, restored: false };
  if (stored) {
    o.log.info('fanotify group restored from the service manager fd store: marks kept', { mode: stored.mode });
    return { unlock, locks, groupFd: stored.fd, mode: stored.mode, taken: null, restored: true };
  }
  const { fd, mode } = openGroup(o.log);
  return { unlock, locks, groupFd: fd, mode, taken: null, restored: false };
}

/** A lock held by a process that does not answer (a daemon dying) is retried for a while. */
async function lockWithRetry(devs: Map<number, string>, owner: () => LockOwner, meanwhile: () => void, waitMs = 10_000): Promise<FsLocks> {
  const t0 = Date.now();
  for (;;) {
    meanwhile();
    try {
      return await lockFilesystems(devs, owner);
    } catch (e) {
      const silent = e instanceof FilesystemBusy && e.owner.supervisorPid === null && e.owner.workerPid === null;
      if (!silent || Date.now() - t0 > waitMs) throw e;
      await sleep(200);
    }
  }
}

function openGroup(log: Logger): { fd: number; mode: GroupMode } {
  try {
    return { fd: createGroup('pre-content'), mode: 'pre-content' };
  } catch (e) {
    log.warn('pre-content fanotify unavailable, falling back to whole-file recall at open', {
      err: (e as Error).message,
    });
    return { fd: createGroup('content'), mode: 'content' };
  }
}
