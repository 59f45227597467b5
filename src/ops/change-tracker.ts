// Change tracking: a file written after it was archived becomes `dirty` without waiting
// for a scan. A notification-class fanotify group (not the recall group: that one is
// pre-content and cannot report FIDs or CLOSE_WRITE usefully) with a filesystem mark per
// managed filesystem reports FAN_CLOSE_WRITE; for each event we compare the file's size
// and mtime with its record (deriveState) and report the ones that turned dirty.
//
// Invariants and limits:
// - the event fd is the kernel's own (FMODE_NONOTIFY): reading its xattr raises no
//   recall event; it is always closed, in a `finally`;
// - never a filesystem mark on the root filesystem: a root there is left to the periodic
//   scan (logged), as are writers that keep a file open for days and a queue overflow;
// - deletes and renames are not tracked here (they need FID reporting); `tier gc` finds
//   orphans by scanning, and renames keep their key in the xattr anyway.
import { closeSync, fstatSync, read, readlinkSync, statSync } from 'node:fs';
import { FAN_CLASS_NOTIF, FAN_CLOEXEC, FAN_CLOSE_WRITE, FAN_MARK_ADD, FAN_MARK_FILESYSTEM, FAN_NONBLOCK, FAN_Q_OVERFLOW, decodeEvents } from '../kernel/fanotify.js';
import { fanotifyInit, fanotifyMark, fgetxattr, pollReadable, type PollHandle } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE, type StateRecord } from '../engine/state-record.js';
import { deriveState } from '../engine/facts.js';
import type { Logger } from '../log.js';

const O_RDONLY = 0;
const O_LARGEFILE = 0o100000;
const O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;

export interface DirtyFile {
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  record: StateRecord;
}

export interface ChangeTrackerOptions {
  roots: string[];
  onDirty(f: DirtyFile): void;
  log: Logger;
}

export class ChangeTracker {
  private fd = -1;
  private poll: PollHandle | null = null;
  private reading = false;
  private readonly buf = Buffer.alloc(64 * 1024);
  private roots: string[] = [];
  /** Roots actually watched (a root on the root filesystem is not). */
  watched: string[] = [];

  constructor(private readonly o: ChangeTrackerOptions) {}

  start(): void {
    this.fd = fanotifyInit(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
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
      if (!marked.has(dev)) fanotifyMark(this.fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CLOSE_WRITE, AT_FDCWD, root);
      marked.add(dev);
      this.watched.push(root);
    }
    this.roots = this.watched.map((r) => r.replace(/\/+$/, '') + '/');
    this.poll = pollReadable(this.fd, () => this.drain());
  }

  stop(): void {
    this.poll?.close();
    this.poll = null;
    if (this.reading) return; // closed when the read in flight returns
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /**
   * One read at a time, on the libuv threadpool, never on the main thread: the kernel opens
   * an event fd for each event, and for a file this process holds a write lease on (the
   * engine mid-release) that open waits for the lease break, which only the engine's SIGIO
   * handler on the main thread can end. A read there stalled the whole worker until
   * lease-break-time (45 s; the supervisor killed it at 15 s: test/reliability/races.test.ts).
   */
  private drain(): void {
    if (this.reading || this.fd < 0) return;
    this.reading = true;
    read(this.fd, this.buf, 0, this.buf.length, null, (err, n) => {
      this.reading = false;
      if (!this.poll) return this.stop();
      if (err) {
        if (err.code !== 'EAGAIN') this.o.log.warn('change tracking: read failed', { op: 'read', err });
        return;
      }
      if (n <= 0) return;
      for (const ev of decodeEvents(this.buf, n)) {
        if (ev.fd < 0) {
          if (ev.mask & FAN_Q_OVERFLOW) this.o.log.warn('change tracking: queue overflow; the next scan reconciles', { op: 'read' });
          continue;
        }
        try {
          this.inspect(ev.fd);
        } catch (e) {
          this.o.log.warn('change tracking: event not handled', { op: 'close_write', err: e });
        } finally {
          closeSync(ev.fd);
        }
      }
      this.drain();
    });
  }

  private inspect(fd: number): void {
    const rec = decodeRecord(fgetxattr(fd, XATTR_STATE));
    if (!rec?.copy || rec.state === 'dirty') return; // unmanaged, or already known dirty
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) return;
    const size = Number(st.size);
    const mtimeNs = st.mtimeNs.toString();
    if (deriveState(rec, { size, mtimeNs }) !== 'dirty') return;
    const path = readlinkSync(`/proc/self/fd/${fd}`);
    if (!this.roots.some((r) => path.startsWith(r))) return; // same filesystem, not managed
    this.o.onDirty({ path, dev: Number(st.dev), ino: Number(st.ino), size, mtimeNs, record: rec });
  }
}
