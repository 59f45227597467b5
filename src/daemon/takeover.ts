// Taking over a running daemon's fanotify group (issue 12, items 3 and 6): the group and
// its marks outlive the process that made them as long as someone holds the fd, so a new
// `tier daemon` copies the group fd (and the filesystem locks) out of the running worker
// with pidfd_getfd, starts its own worker in standby, asks the old worker to hand over
// (POST /handover: it stops reading and answers every event it read), then lets its own
// worker read. Events raised meanwhile wait in the group's queue: no reader gets an error.
//
// Invariants:
// - At most one process reads the group at any time: responses are matched by fd number
//   only, and two readers' numbers collide (a response could free the wrong reader).
// - A daemon that shares its group with another one that serves never flushes the marks
//   and never sweeps stale numbers (close-group.ts, stale-events.ts).
import { request } from 'node:http';
import type { GroupMode } from '../kernel/fanotify.js';
import { closeFd, pidfdGetfd, pidfdOpen } from '../kernel/libc.js';
import { queryOwner, type LockOwner } from './fs-lock.js';
import { socketPath } from './protocol.js';

/** The first daemon that answers on the lock of one of `devs`, or null. */
export async function runningOwner(devs: Map<number, string>): Promise<{ owner: LockOwner; dev: number; dir: string } | null> {
  for (const [dev, dir] of devs) {
    const owner = await queryOwner(dev, dir);
    if (owner) return { owner, dev, dir };
  }
  return null;
}

export interface Taken {
  groupFd: number;
  mode: GroupMode;
  /** device -> our copy of the old daemon's lock socket. */
  lockFds: Map<number, number>;
  workerPid: number;
  /** The old daemon's supervisor (null: it died, an orphaned worker was taken). */
  supervisorPid: number | null;
}

/** Copies the group fd and the lock fds out of the running worker. */
export function takeFds(owner: LockOwner): Taken {
  if (owner.workerPid === null || owner.groupFd === undefined || owner.mode === undefined)
    throw new Error('the running daemon has no worker to take the group from (it may be restarting it): try again');
  const pidfd = pidfdOpen(owner.workerPid);
  try {
    const groupFd = pidfdGetfd(pidfd, owner.groupFd);
    const lockFds = new Map<number, number>();
    for (const [dev, fd] of Object.entries(owner.lockFds ?? {})) lockFds.set(Number(dev), pidfdGetfd(pidfd, fd));
    return { groupFd, mode: owner.mode, lockFds, workerPid: owner.workerPid, supervisorPid: owner.supervisorPid };
  } finally {
    closeFd(pidfd);
  }
}

/** Asks the worker answering on stateDir's control socket to stop reading the group and hand over. */
export function requestHandover(stateDir: string, timeoutMs = 120_000): Promise<{ pid: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socketPath(stateDir), method: 'POST', path: '/handover', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode === 200) resolve(JSON.parse(body) as { pid: number });
        else reject(new Error(`handover refused (${res.statusCode}): ${body}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no handover within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
