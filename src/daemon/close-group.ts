// The one way this daemon closes its fanotify group for good (stop, or the last holder
// exiting). Closing a group while readers wait on its events hangs the closer in
// fsnotify_destroy_group (D state) and then lets those readers read zeros
// (kernel-facts.md, "Measured 2026-12-06"); unread events are allowed by the kernel
// at release, which is zeros too.
//
// Invariants:
// - The inode marks go first (FAN_MARK_FLUSH): from then on no new event can arrive.
// - Every event still queued (raised before the flush, read by nobody) is read and
//   answered FAN_DENY_ERRNO(EIO) here: never ALLOW, the data may be a hole.
// - Events read earlier by some process (on the group's access list) are that process's
//   to answer before this runs (the worker's recall.stop(), the supervisor's stale sweep).
// - Never call this while another process still serves the same group (a takeover): the
//   flush would take the marks from under it.
import { closeSync } from 'node:fs';
import { FAN_DENY_EIO, FAN_MARK_FLUSH, decodeEvents, respond } from '../kernel/fanotify.js';
import { fanotifyMark, readNb } from '../kernel/libc.js';
import type { Logger } from '../log.js';

/** Removes every inode mark of the group: no event is raised after this returns. */
export function flushMarks(groupFd: number): void {
  fanotifyMark(groupFd, FAN_MARK_FLUSH, 0, -100 /* AT_FDCWD, unused */, null);
}

/** Reads every queued event and answers it EIO; returns how many were answered. */
export function denyQueued(groupFd: number, log: Logger): number {
  const buf = Buffer.alloc(64 * 1024);
  let answered = 0;
  for (let errors = 0; errors < 64; ) {
    let n: number;
    try {
      n = readNb(groupFd, buf);
    } catch (e) {
      errors++; // ETXTBSY etc.: that reader got its error from the kernel already
      log.debug('close: fanotify read failed', { err: e });
      continue;
    }
    if (n <= 0) break;
    for (const ev of decodeEvents(buf, n)) {
      if (ev.fd < 0) continue;
      try {
        respond(groupFd, ev.fd, FAN_DENY_EIO);
        answered++;
      } catch (e) {
        log.warn('close: answer failed', { fd: ev.fd, err: e });
      } finally {
        closeSync(ev.fd);
      }
    }
  }
  return answered;
}

/** Flush marks, answer what is queued, close. Never hangs on waiting readers. */
export function closeGroup(groupFd: number, log: Logger): void {
  try {
    flushMarks(groupFd);
  } catch (e) {
    log.error('close: flushing the marks failed', { err: e });
  }
  const answered = denyQueued(groupFd, log);
  if (answered > 0) log.warn('events queued at close answered EIO', { count: answered });
  closeSync(groupFd);
}
