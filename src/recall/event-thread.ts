// The recall event thread (a worker_thread of the recall worker): reads the fanotify group
// with blocking poll()+read(), answers events on resident ranges itself (fast-path.ts), and
// hands every other event, its fd still open, to the main thread (service.ts).
//
// Invariants:
// - Every event read is answered here or forwarded, whatever throws: a throw while
//   deciding answers FAN_DENY_ERRNO(EIO). A forwarded event is answered by the main thread.
//   Read-ahead a read answered here wants goes to the main thread after the answer, with a
//   dup of the event fd that the main thread closes (never an event: nothing to answer).
// - Each event fd number is covered by the in-flight record before it is decided, so a
//   successor answers it if this process dies (inflight.ts). This thread alone writes it.
// - Grants are drained (receiveMessageOnPort, synchronous) after every read() and before
//   the events it returned are decided: a revoke the main thread posted before an event
//   was queued is always seen first.
// - SIGIO is blocked in this thread: a read() that creates an event fd waits for a lease
//   break, and the lease holder's SIGIO handler must run on the main thread meanwhile
//   (test/recall/lease.test.ts). The read blocks this thread only, never the event loop.
// - The fd is closed before the answer is written (an exec waiting on it denies writers
//   next); the thread is the only one that touches the numbers it answers.
// - read() errors on the group fd are counted and reported, never fatal.
// - An ignore mark (a never-released file's open under our filesystem mark) is added here
//   only while the event fd is held, and the record is read again after it (marks.ts).
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { FAN_ALLOW, FAN_DENY_EIO, FAN_OPEN_EXEC_PERM, FAN_OPEN_PERM, decodeEvents, respond, type FanEvent } from '../kernel/fanotify.js';
import { blockSignalInThread, closeFd, fcntl, fgetxattr, fstatxInto, readNb, schedYield, waitReadable, writeAll } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../record/state-record.js';
import { copyProblem } from './inode.js';
import { commOf, namedIn } from './proc.js';
import { MarksView } from './marks.js';
import { C_ALLOWED, C_DENIED, C_EVENTS, C_READ_ERRORS, C_SILENCED, C_SPUN, GrantTable, statKey, type EventThreadData, type Fed, type GrantMsg, type ThreadMsg } from './fast-path.js';
import { InflightRecord } from './inflight.js';
import { faultPoint } from '../engine/fault.js';

const SIGIO = 29;
const F_DUPFD_CLOEXEC = 1030;
const TWO32 = 4294967296;

/** st_dev as Node (glibc makedev) builds it from statx's major and minor (as walk/walk.ts). */
function makedev(major: number, minor: number): number {
  return (major & 0xfff) * 256 + (minor & 0xff) + Math.floor(minor / 256) * 1048576 + Math.floor(major / 4096) * 2 ** 44;
}
const READ_BUF = 64 * 1024;
/** Poll timeout: how soon a stop request is seen when no event comes. */
const IDLE_MS = 100;
/**
 * Adaptive polling after an event answered here: how long (TIER_SPIN_US, 0 turns it off) and
 * at most how many empty polls (measured: bench 5, docs/recall.md "Adaptive polling").
 */
const SPIN_MS = Number(process.env.TIER_SPIN_US ?? 50) / 1000;
const SPIN_POLLS = 200;

function run(d: EventThreadData): void {
  blockSignalInThread(SIGIO);
  const post = (m: ThreadMsg): void => d.port.postMessage(m);
  const report = (level: 'warn' | 'error', msg: string, fields: Record<string, unknown>): void => {
    try {
      post({ t: 'log', level, msg, fields });
    } catch {
      // Nothing else to tell it with.
    }
  };
  const inflight = new InflightRecord(d.inflightPath);
  const grants = new GrantTable();
  const buf = Buffer.alloc(READ_BUF);
  const stx = Buffer.alloc(256); // struct statx
  const mtime = { sec: 0, nsec: 0 };
  const allow = Buffer.alloc(8); // struct fanotify_response { fd, FAN_ALLOW }
  allow.writeUInt32LE(FAN_ALLOW, 4);
  const drainGrants = (): void => {
    for (let m = receiveMessageOnPort(d.port); m; m = receiveMessageOnPort(d.port)) grants.apply(m.message as GrantMsg);
  };

  let dev = 0; // of the last statFd
  /** fstatx of an event fd into `stx`; the inode's statKey. */
  const statFd = (fd: number): string => {
    fstatxInto(fd, stx);
    // struct statx: ino @32, size @40, mtime {i64 sec, u32 nsec} @112, dev major/minor @136/140
    dev = makedev(stx.readUInt32LE(136), stx.readUInt32LE(140));
    return statKey(dev, stx.readUInt32LE(36), stx.readUInt32LE(32));
  };
  const marks = d.marks ? new MarksView(d.groupFd, d.marks) : null;

  /**
   * An open this thread may allow alone (fast-path.ts rules): a plain open (no exec) by
   * another process of a released or partial file with a usable copy, the handler holding
   * nothing for it, the opener not in whole_file_for. The first open of a freshly released
   * file is this case: it no longer waits behind the main thread's fills (bench 3).
   */
  const openHere = (ev: FanEvent): boolean => {
    if (!d.opens || (ev.mask & FAN_OPEN_EXEC_PERM) !== 0 || ev.pid === process.pid) return false;
    if (grants.held(statFd(ev.fd))) return false;
    const rec = decodeRecord(fgetxattr(ev.fd, XATTR_STATE));
    if (!rec || (rec.state !== 'released' && rec.state !== 'partial')) return plainHere(ev.fd);
    if (copyProblem(rec) !== null) return false;
    return !namedIn(d.wholeFileFor, commOf(ev.pid));
  };

  /**
   * A never-released file's first open under our filesystem mark (every file there raises
   * one): allowed here, its later events silenced with an ignore mark, as the handler does
   * (marks.ts rules; bench 9d), without the trip to the main thread. False (the handler
   * decides): not under our filesystem mark, the budget reached, or released meanwhile.
   */
  const plainHere = (fd: number): boolean => {
    if (!marks || !marks.covers(dev) || !marks.silence(fd)) return false;
    d.counters[C_SILENCED]!++;
    return true;
  };

  /**
   * Read-ahead for a read answered here: the handler gets it beside the answer, with a dup of
   * the event fd (same open file: its writes raise no event). A dup that fails costs only
   * the read-ahead: the reader's next miss asks again, holding the reader.
   */
  const askAhead = (ev: FanEvent, fed: Fed): void => {
    let fd: number;
    try {
      fd = fcntl(ev.fd, F_DUPFD_CLOEXEC, 0);
    } catch {
      return;
    }
    try {
      post({ t: 'ahead', ev: { ...ev, fd }, fed });
    } catch {
      closeFd(fd); // the answer must not depend on it
    }
  };

  /** Answers here (true) or forwards (false) one event. Never throws. */
  const handle = (ev: FanEvent): boolean => {
    let answer: number | null = null;
    let fed: Fed | undefined;
    try {
      inflight.note(ev.fd);
      const open = (ev.mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM)) !== 0;
      if (open) {
        if (openHere(ev)) answer = FAN_ALLOW;
      } else if (grants.size > 0 && ev.range) {
        const key = statFd(ev.fd);
        mtime.sec = stx.readUInt32LE(112) + stx.readInt32LE(116) * TWO32;
        mtime.nsec = stx.readUInt32LE(120);
        const r = grants.decide(key, stx.readUInt32LE(40) + stx.readUInt32LE(44) * TWO32, mtime, ev.range);
        fed = r.fed;
        if (r.allow) {
          answer = FAN_ALLOW;
          if (fed) askAhead(ev, fed);
        }
      }
      if (answer === null) {
        post({ t: 'ev', ev, fed });
        return false;
      }
    } catch (e) {
      answer = FAN_DENY_EIO;
      report('error', 'recall event thread failed on an event', { op: 'recall', fd: ev.fd, err: e instanceof Error ? e.message : String(e) });
    }
    try {
      closeFd(ev.fd); // libc close: Node's closeSync costs ~7 us more per call in a worker thread (measured)
    } catch {
      // Already closed: the answer goes by number.
    }
    try {
      if (answer === FAN_ALLOW) {
        allow.writeInt32LE(ev.fd, 0);
        writeAll(d.groupFd, allow, 'fanotify response');
      } else respond(d.groupFd, ev.fd, answer);
    } catch (e) {
      report('error', 'fanotify response failed', { op: 'respond', fd: ev.fd, err: e instanceof Error ? e.message : String(e) });
    }
    d.counters[C_EVENTS]!++;
    d.counters[answer === FAN_ALLOW ? C_ALLOWED : C_DENIED]!++;
    return true;
  };

  /** Reads the group until EAGAIN, deciding every event; how many it answered here and forwarded. */
  const drain = (): { answered: number; forwarded: number } => {
    const seen = { answered: 0, forwarded: 0 };
    for (let errors = 0; errors <= 64; ) {
      let n: number;
      try {
        n = readNb(d.groupFd, buf);
      } catch (e) {
        // ETXTBSY (event on a running binary: the reader gets EPERM), EMFILE, ...
        d.counters[C_READ_ERRORS]!++;
        errors++;
        report('warn', 'fanotify read failed', { op: 'read', err: e instanceof Error ? e.message : String(e) });
        continue;
      }
      if (n <= 0) break; // EAGAIN: drained
      faultPoint('event-thread-read'); // FAULT INJECTION (tests): the thread dies holding unanswered events
      drainGrants();
      for (const ev of decodeEvents(buf, n)) {
        if (ev.fd < 0) post({ t: 'ev', ev });
        else if (handle(ev)) seen.answered++;
        else seen.forwarded++;
      }
      if (Atomics.load(d.ctl, 0) !== 0) break;
    }
    return seen;
  };

  post({ t: 'ready' });
  while (Atomics.load(d.ctl, 0) === 0) {
    if (!waitReadable(d.groupFd, IDLE_MS)) continue;
    let last = drain();
    // Adaptive polling: a reader answered here usually reads again within microseconds
    // (preads on resident ranges). Poll without blocking for SPIN_MS after the last such
    // answer, yielding between polls, so its next event finds this thread awake instead of
    // paying a wake-up (docs/recall.md "Adaptive polling"). Never after a forwarded event:
    // the main thread needs the CPU then.
    while (SPIN_MS > 0 && last.answered > 0 && last.forwarded === 0 && Atomics.load(d.ctl, 0) === 0) {
      const until = performance.now() + SPIN_MS;
      last = { answered: 0, forwarded: 0 };
      for (let polls = 0; polls < SPIN_POLLS && performance.now() < until; polls++) {
        schedYield(); // a reader on this CPU runs first
        last = drain();
        if (last.answered + last.forwarded > 0) break;
      }
      if (last.answered > 0) d.counters[C_SPUN]! += last.answered;
    }
  }
  post({ t: 'stopped' });
  d.port.close();
}

run(workerData as EventThreadData);
