// What a supervisor must hold before it starts a worker: the state dir (daemon.pid), the
// lock of every filesystem its policies manage (fs-lock.ts), and a fanotify group: a new
// one, or the running daemon's (takeover.ts) when the running one is an orphaned worker
// (its supervisor was killed) or when --takeover asks for it. Anything else that holds one
// of those filesystems is refused with a message naming it.
import { chmodSync, mkdirSync } from 'node:fs';
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
  const running = await runningOwner(devs);
  if (running) {
    const { owner, dev, dir } = running;
    const orphan = owner.supervisorPid === null;
    if (!orphan && !o.takeover) throw new CannotStart(new FilesystemBusy(owner, dir, dev).message);
    if (owner.stateDir !== o.stateDir)
      throw new CannotStart(
        `a tier daemon (worker pid ${owner.workerPid}) with state dir ${owner.stateDir} serves the filesystem of ${dir} ` +
          `(dev ${devName(dev)}); a takeover keeps its state: start with --state-dir ${owner.stateDir}`,
      );
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
    const b = await lockFilesystems(rest, o.owner);
    locks = { fds: new Map([...a.fds, ...b.fds]), close: () => (a.close(), b.close()) };
  } catch (e) {
    unlock();
    if (e instanceof FilesystemBusy) throw new CannotStart(e.message);
    throw e;
  }
  if (taken) return { unlock, locks, groupFd: taken.groupFd, mode: taken.mode, taken };
  const { fd, mode } = openGroup(o.log);
  return { unlock, locks, groupFd: fd, mode, taken: null };
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
