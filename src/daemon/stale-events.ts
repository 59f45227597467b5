// Answers the permission events a dead worker read and never answered.
//
// The kernel keeps such events on the group's access list under the fd number the dead
// worker got at read(); any holder of the group fd may answer by that number
// (kernel-facts.md). The worker's in-flight record names most of them, but a SIGKILL
// between read() and the record's update would leave a reader blocked forever, so we
// answer EVERY fd number the worker could have had (0 .. its RLIMIT_NOFILE): a number
// with no pending event costs one write() that fails with ENOENT (~6 µs).
//
// Invariant: call this only while no worker runs. A live worker's own pending events sit
// on the same list, and answering them from here would fail reads it is serving.
import { readFileSync, rmSync } from 'node:fs';
import { FAN_DENY_EIO, respond } from '../kernel/fanotify.js';
import type { Logger } from '../log.js';

const SWEEP_CAP = 65_536;

/** Denies with EIO every pending event of a dead worker, then drops its in-flight record. */
export function answerStaleEvents(groupFd: number, inflightPath: string, log: Logger): { answered: number } {
  let answered = 0;
  if (groupFd >= 0) {
    const limit = Math.min(openFileLimit(), SWEEP_CAP);
    for (let fd = 0; fd < limit; fd++) {
      try {
        respond(groupFd, fd, FAN_DENY_EIO);
        answered++;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') log.warn('answering a stale event failed', { fd, err: e });
      }
    }
  }
  // The record is answered in full (or belongs to a group that is gone): the next
  // worker must not answer these numbers again, they may be its own by then.
  rmSync(inflightPath, { force: true, recursive: true });
  return { answered };
}

/** The soft RLIMIT_NOFILE the worker inherits from us. */
function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s+/)[3];
    const n = Number(soft);
    return Number.isFinite(n) && n > 0 ? n : SWEEP_CAP;
  } catch {
    return SWEEP_CAP;
  }
}
