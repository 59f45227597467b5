// While no worker can serve (one is dying, the next not yet started, or the daemon is
// stopping), the supervisor itself reads the group's events and answers each with
// FAN_DENY_ERRNO(EIO): readers fail fast instead of waiting, and nothing stays pending —
// a dying worker's teardown can wait on pending events (worker-process.ts), so leaving
// them unanswered could stall it for good. ALLOW only a file whose record says neither
// released nor partial: all its data is local, there is nothing to wait for. Under a
// filesystem mark (recall/marks.ts) every file's first open comes here: failing them all
// would fail the whole filesystem while a worker restarts. Any other: EIO, never ALLOW (a hole).
import { closeSync } from 'node:fs';
import { FAN_ALLOW, FAN_DENY_EIO, decodeEvents, respond } from '../kernel/fanotify.js';
import { fgetxattr, pollReadable, readNb, type PollHandle } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../record/state-record.js';
import type { Logger } from '../log.js';

/** No record, or one saying the data is all here (archived, resident): no hole of ours. Unreadable: assume holes. */
function allLocal(fd: number): boolean {
  try {
    const buf = fgetxattr(fd, XATTR_STATE);
    if (!buf) return true;
    const s = decodeRecord(buf)?.state;
    return s !== undefined && s !== 'released' && s !== 'partial';
  } catch {
    return false;
  }
}

export class Drain {
  private poll: PollHandle | null = null;
  private readonly buf = Buffer.alloc(64 * 1024);
  answered = 0;

  constructor(
    private readonly groupFd: number,
    private readonly log: Logger,
  ) {}

  get active(): boolean {
    return this.poll !== null;
  }

  start(): void {
    if (this.poll) return;
    this.poll = pollReadable(this.groupFd, () => this.drain());
    this.drain();
  }

  /** Stops reading; call before a worker starts (it must be the only reader then). */
  stop(): void {
    this.poll?.close();
    this.poll = null;
  }

  private drain(): void {
    for (let errors = 0; errors < 64; ) {
      let n: number;
      try {
        n = readNb(this.groupFd, this.buf);
      } catch (e) {
        errors++; // ETXTBSY etc.: that reader got its error from the kernel already
        this.log.debug('drain: fanotify read failed', { err: e });
        continue;
      }
      if (n <= 0) return;
      for (const ev of decodeEvents(this.buf, n)) {
        if (ev.fd < 0) continue;
        try {
          if (allLocal(ev.fd)) respond(this.groupFd, ev.fd, FAN_ALLOW);
          else {
            respond(this.groupFd, ev.fd, FAN_DENY_EIO);
            this.answered++;
          }
        } catch (e) {
          this.log.warn('drain: answer failed', { fd: ev.fd, err: e });
        } finally {
          closeSync(ev.fd);
        }
      }
    }
  }
}
