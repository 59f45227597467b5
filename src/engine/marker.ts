// Adapts the recall service's marking to the release protocol's two phases.
// Measured on this kernel: while the engine holds its write lease, an inode mark with
// FAN_OPEN_PERM makes a new opener fail with EPERM (its open-time event cannot get an
// event fd, that open would conflict with the lease), whereas FAN_PRE_ACCESS alone lets
// it wait, the engine abort on SIGIO, and the opener read normally. So: pre-content part
// before the lease, the full mark (open events for sparse-aware copiers) after the punch.
import { addInodeMark, FAN_PRE_ACCESS, releasedMask, removeInodeMark, type GroupMode } from '../kernel/fanotify.js';
import type { Marker, NoNotifyAccess } from './execute.js';

export interface RecallMarks extends Partial<NoNotifyAccess> {
  markReleased(fd: number): void | Promise<void>;
  unmark(fd: number): void | Promise<void>;
  /** The recall service's marking (recall/marks.ts): under a filesystem mark the pre-lease step is an ignore mark. */
  marks?: { preLease(fd: number): void; leased(fd: number): void; covers(fd: number): boolean; readonly filesystems: number };
}

/**
 * The Marker the daemon passes to runApply/migrate: `leaseSafeMarker(cfg.groupFd,
 * cfg.mode, recallService)`. In content mode (FAN_OPEN_PERM only) nothing can be marked
 * before the lease without the EPERM above; an opener that arrives before the mark is
 * added sees the data still local (the engine aborts before punching), so nothing is lost.
 */
export function leaseSafeMarker(groupFd: number, mode: GroupMode, recall: RecallMarks): Marker {
  return {
    markPreLease(fd) {
      if (recall.marks) recall.marks.preLease(fd);
      else if (mode === 'pre-content') addInodeMark(groupFd, fd, FAN_PRE_ACCESS);
    },
    markReleased: (fd) => recall.markReleased(fd),
    unmark: (fd) => recall.unmark(fd),
    // Before the engine reopens a file whose data is all local (open-unmarked.ts): a mark
    // left on it (worker killed mid-release, handler bookkeeping failed) would give the
    // reopened fd fanotify HSM mode. No mark: no error. Not counted as an unmark.
    clearMark(fd) {
      removeInodeMark(groupFd, fd, releasedMask(mode)); // pre-content: includes FAN_PRE_ACCESS
    },
    ...(recall.marks ? { leased: (fd: number) => recall.marks!.leased(fd), underFilesystemMark: (fd: number) => recall.marks!.covers(fd) } : {}),
    opensWait: () => (recall.marks?.filesystems ?? 0) > 0,
    // Re-releasing partial files (release-partial.ts) needs the service's own-open capture.
    noNotify: recall.captureOwnOpen && recall.fetching && recall.forget && recall.cachedResident ? (recall as NoNotifyAccess) : undefined,
  };
}
