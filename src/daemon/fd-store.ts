// systemd's file descriptor store (issue 12, item 6): under systemd the group is also
// handed to the service manager (sd_notify FDSTORE=1 with the fd as SCM_RIGHTS), so when
// every process of the daemon dies (a crash, then systemd's SIGKILL of the unit's
// processes), the group and its marks survive, and systemd gives them back to the next
// start as LISTEN_FDS. The name carries the group's mode: `tier-group.pre-content`.
//
// Invariants:
// - The daemon's final stop flushes the marks, so it removes the group from the store
//   first (FDSTOREREMOVE=1): a stored group always has its marks.
// - A restored group may hold events a dead worker read and never answered: the
//   supervisor sweeps them (stale-events.ts) before a worker reads.
// - A takeover names the new supervisor MAINPID before the old one can exit.
// - Without NOTIFY_SOCKET (not under systemd) all of this is a no-op.
import type { GroupMode } from '../kernel/fanotify.js';
import { sendDatagramWithFds } from '../kernel/libc.js';
import type { Logger } from '../log.js';

const PREFIX = 'tier-group.';
const SD_LISTEN_FDS_START = 3;

/** Puts the group in the service manager's fd store (no-op outside systemd). */
export function storeGroup(groupFd: number, mode: GroupMode, log: Logger, env = process.env): void {
  const sock = env.NOTIFY_SOCKET;
  if (!sock) return;
  try {
    sendDatagramWithFds(sock, `FDSTORE=1\nFDNAME=${PREFIX}${mode}\n`, [groupFd]);
    log.info('fanotify group kept in the service manager fd store', { name: `${PREFIX}${mode}` });
  } catch (e) {
    log.warn('cannot store the fanotify group with the service manager (FileDescriptorStoreMax=?)', { err: e });
  }
}

/** Takes the group out of the fd store (before a final stop flushes its marks). */
export function unstoreGroup(mode: GroupMode, log: Logger, env = process.env): void {
  const sock = env.NOTIFY_SOCKET;
  if (!sock) return;
  try {
    sendDatagramWithFds(sock, `FDSTOREREMOVE=1\nFDNAME=${PREFIX}${mode}\n`, []);
  } catch (e) {
    log.warn('cannot remove the fanotify group from the service manager fd store', { err: e });
  }
}

/**
 * Tells the service manager which process is the unit's main one now (`MAINPID=`): a
 * takeover started by `systemctl reload` (ExecReload, NotifyAccess=all) names itself
 * before it asks the old daemon to hand over, so the old supervisor's exit is not taken
 * for the unit's end (systemd would stop the unit, the new daemon with it).
 */
export function notifyMainPid(pid: number, log: Logger, env = process.env): void {
  const sock = env.NOTIFY_SOCKET;
  if (!sock) return;
  try {
    sendDatagramWithFds(sock, `MAINPID=${pid}\n`, []);
    log.info('told the service manager the main pid', { mainPid: pid });
  } catch (e) {
    log.warn('cannot tell the service manager the main pid (NotifyAccess=all?)', { err: e, mainPid: pid });
  }
}

/** The group systemd passed back (LISTEN_FDS for this pid, named tier-group.MODE), or null. */
export function groupFromFdStore(env = process.env): { fd: number; mode: GroupMode } | null {
  if (Number(env.LISTEN_PID) !== process.pid) return null;
  const n = Number(env.LISTEN_FDS);
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  let found: { fd: number; mode: GroupMode } | null = null;
  for (let i = 0; i < n; i++) {
    const name = names[i] ?? '';
    if (!name.startsWith(PREFIX)) continue;
    const mode = name.slice(PREFIX.length);
    if (mode === 'pre-content' || mode === 'content') found = { fd: SD_LISTEN_FDS_START + i, mode };
  }
  // Our children must not take these for theirs.
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  return found;
}
