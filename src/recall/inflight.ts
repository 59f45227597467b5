// The in-flight record: lets a successor worker answer the events a dead worker read
// but never answered (the readers stay blocked until someone does; the group survives
// in the supervisor). Answering by fd number works from any holder of the group fd.
//
// Instead of rewriting the exact set per event (a file write per event on the hot
// path), the record holds a high-water fd number with headroom: every event fd the
// worker ever held is below it. Event fds are allocated lowest-free-first, so the
// record is rewritten only when fd numbers climb near it. The successor, before it
// reads any event, answers EIO for every number below the mark; numbers that match
// no pending event are refused by the kernel (ENOENT) and ignored.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { FAN_DENY_EIO, respond } from '../kernel/fanotify.js';

/** Room for one read buffer of events (64 KiB / 48-byte events) and some. */
export const HEADROOM = 2048;

export class InflightRecord {
  private mark = 0;

  constructor(private readonly path: string) {}

  /** Called with each event fd before the event is handled. Cheap unless fds climb. */
  note(fd: number): void {
    if (fd + HEADROOM / 2 < this.mark) return;
    this.mark = fd + HEADROOM;
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, `${this.mark}\n`);
    renameSync(tmp, this.path);
  }

  /** The high-water mark a predecessor left; 0 when there is none. */
  readStale(): number {
    try {
      const n = Number.parseInt(readFileSync(this.path, 'utf8').trim(), 10);
      return Number.isFinite(n) && n > 0 ? Math.min(n, 1 << 20) : 0;
    } catch {
      return 0;
    }
  }

  /**
   * Answers EIO for every fd number a predecessor may have left unanswered. Must run
   * before this worker reads any event. Returns how many responses the kernel took.
   */
  answerStale(groupFd: number): number {
    const upto = this.readStale();
    let answered = 0;
    for (let fd = 0; fd < upto; fd++) {
      try {
        respond(groupFd, fd, FAN_DENY_EIO);
        answered++;
      } catch {
        // ENOENT: no pending event with that number.
      }
    }
    this.mark = 0;
    this.note(0);
    return answered;
  }
}
