// Change tracking: keeps the catalog true when managed files change, without waiting for a
// scan. A notification-class fanotify group with FID reporting (FAN_REPORT_DFID_NAME_TARGET)
// and a filesystem mark per managed filesystem reports writes (MODIFY, also while the writer
// keeps the file open), CLOSE_WRITE, ATTRIB, DELETE and RENAME; change-events.ts turns them
// into onDirty / onDeleted / onRenamed.
//
// Invariants and limits:
// - a FID group gets no event fd; objects are opened O_PATH by handle (change-fs.ts), which
//   raises no recall event and breaks no lease;
// - events caused by this process (the engine's punch, futimens and xattr writes, the
//   recall service's fills) are ignored: they must never dirty a file;
// - never a filesystem mark on the root filesystem: a root there is left to the periodic
//   scan (logged);
// - a queue overflow loses events: logged, and `onOverflow` lets a reconcile scan catch up.
import { closeSync, read, statSync } from 'node:fs';
import {
  FAN_ATTRIB, FAN_CLASS_NOTIF, FAN_CLOEXEC, FAN_CLOSE_WRITE, FAN_DELETE, FAN_MARK_ADD, FAN_MARK_FILESYSTEM, FAN_MODIFY,
  FAN_NONBLOCK, FAN_ONDIR, FAN_Q_OVERFLOW, FAN_RENAME, FAN_REPORT_DFID_NAME_TARGET,
} from '../kernel/fanotify.js';
import { decodeFidEvents } from '../kernel/fanotify-fid.js';
import { fanotifyInit, fanotifyMark, pollReadable, type PollHandle } from '../kernel/libc.js';
import type { Logger } from '../log.js';
import { closeWatchedFs, openWatchedFs, type WatchedFs } from './change-fs.js';
import { ChangeRouter, type DeletedFile, type DirtyFile, type LiveFile, type RenamedEntry } from './change-events.js';

export type { DeletedFile, DirtyFile, LiveFile, RenamedEntry } from './change-events.js';

const O_RDONLY = 0;
const O_LARGEFILE = 0o100000;
const O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;

export const TRACK_MASK = FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB | FAN_DELETE | FAN_RENAME | FAN_ONDIR;
/**
 * Pause between reads while events flow: the kernel merges the queued events of one object
 * meanwhile, so a long write stream costs a few reads a second, not one per write(2).
 */
export const READ_PAUSE_MS = 50;

export interface ChangeTrackerOptions {
  roots: string[];
  onDirty(f: DirtyFile): void;
  /** A managed file's last name went away (unlink, rename onto it). */
  onDeleted?(d: DeletedFile): void;
  /** A file or directory was renamed (also out of the roots, on the same filesystem). */
  onRenamed?(r: RenamedEntry): void;
  /** A managed inode is alive at a path (its row may name a link it lost). */
  onAlive?(f: LiveFile): void;
  /** The kernel queue overflowed: events were lost, a reconcile scan should run. */
  onOverflow?(): void;
  log: Logger;
}

export class ChangeTracker {
  private fd = -1;
  private poll: PollHandle | null = null;
  private reading = false;
  private pause: NodeJS.Timeout | null = null;
  /** 32 KiB: some 400 events a read, handled in one go on the main thread (~20 ms at most). */
  private readonly buf = Buffer.alloc(32 * 1024);
  private readonly fss = new Map<string, WatchedFs>();
  private router: ChangeRouter | null = null;
  /** Roots actually watched (a root on the root filesystem is not). */
  watched: string[] = [];

  constructor(private readonly o: ChangeTrackerOptions) {}

  start(): void {
    this.fd = fanotifyInit(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC | FAN_REPORT_DFID_NAME_TARGET, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    const rootDev = statSync('/').dev;
    const marked = new Set<number>();
    for (const root of this.o.roots) {
      let dev: number;
      try {
        dev = statSync(root).dev;
      } catch (e) {
        this.o.log.warn('change tracking: root unavailable', { op: 'fanotify_mark', path: root, err: e });
        continue;
      }
      if (dev === rootDev) {
        this.o.log.warn('change tracking off for a root on the root filesystem; periodic scans reconcile it', { op: 'fanotify_mark', path: root });
        continue;
      }
      if (!marked.has(dev)) {
        fanotifyMark(this.fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, TRACK_MASK, AT_FDCWD, root);
        const w = openWatchedFs(root);
        this.fss.set(w.fsid, w);
      }
      marked.add(dev);
      this.watched.push(root);
    }
    const roots = this.watched.map((r) => r.replace(/\/+$/, '') + '/');
    const none = () => {};
    this.router = new ChangeRouter(this.fss, roots, { onDirty: this.o.onDirty, onDeleted: this.o.onDeleted ?? none, onRenamed: this.o.onRenamed ?? none, onAlive: this.o.onAlive ?? none }, this.o.log);
    this.poll = pollReadable(this.fd, () => this.drain());
  }

  stop(): void {
    this.poll?.close();
    this.poll = null;
    if (this.pause) clearTimeout(this.pause);
    this.pause = null;
    this.router?.stop();
    for (const w of this.fss.values()) closeWatchedFs(w); // only the router uses them
    this.fss.clear();
    if (this.reading) return; // the group fd is closed when the read in flight returns
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /** Reads again after the event loop has turned once (recall events go first). */
  private drainSoon(): void {
    this.pause = setTimeout(() => {
      this.pause = null;
      this.drain();
    }, 0);
  }

  /**
   * One read at a time, on the libuv threadpool, never on the main thread (the fd-reporting
   * tracker needed that: the kernel opened an event fd per event, which waited for a lease
   * the engine held; a FID group opens none, but a blocking read here must still never
   * stall the worker's main thread, which answers recall events).
   */
  private drain(): void {
    if (this.reading || this.pause || this.fd < 0 || !this.poll) return;
    this.reading = true;
    this.poll.stop(); // level-triggered: it would fire on every loop turn until the read is done
    read(this.fd, this.buf, 0, this.buf.length, null, (err, n) => {
      this.reading = false;
      if (!this.poll) return this.stop();
      if (err || n <= 0) {
        if (err && err.code !== 'EAGAIN') this.o.log.warn('change tracking: read failed', { op: 'read', err });
        this.poll.start();
        return;
      }
      this.router?.beginBatch();
      for (const ev of decodeFidEvents(this.buf, n)) {
        if (ev.mask & FAN_Q_OVERFLOW) {
          this.o.log.warn('change tracking: queue overflow, events lost; a reconcile scan catches up', { op: 'read' });
          try {
            this.o.onOverflow?.();
          } catch (e) {
            this.o.log.warn('change tracking: overflow hook failed', { op: 'overflow', err: e });
          }
          continue;
        }
        if (ev.pid === process.pid) continue; // our own punch/futimens/xattr writes
        this.router?.route(ev);
      }
      // A full read means a backlog (rm -rf of a tree): read on at once, or the queue
      // overflows. Otherwise pause so that a write stream's events merge meanwhile.
      if (n > this.buf.length / 2) return this.drainSoon();
      this.pause = setTimeout(() => {
        this.pause = null;
        this.poll?.start();
      }, READ_PAUSE_MS);
    });
  }
}
