// The recall event thread (a worker_thread of the recall worker): reads the fanotify group
// with blocking poll()+read(), answers events on resident ranges itself (fast-path.ts), and
// hands every other event, its fd still open, to the main thread (service.ts).
//
// Invariants:
// - Every event read is answered here or forwarded, whatever throws: a throw while
//   deciding answers FAN_DENY_ERRNO(EIO). A forwarded event is answered by the main thread.
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
import { closeSync, fstatSync } from 'node:fs';
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { FAN_ALLOW, FAN_DENY_EIO, FAN_OPEN_EXEC_PERM, FAN_OPEN_PERM, decodeEvents, respond, type FanEvent } from '../kernel/fanotify.js';
import { blockSignalInThread, readNb, waitReadable } from '../kernel/libc.js';
import { C_ALLOWED, C_DENIED, C_EVENTS, C_READ_ERRORS, GrantTable, type EventThreadData, type Fed, type GrantMsg, type ThreadMsg } from './fast-path.js';
import { InflightRecord } from './inflight.js';

const SIGIO = 29;
const READ_BUF = 64 * 1024;
/** Poll timeout: how soon a stop request is seen when no event comes. */
const IDLE_MS = 100;

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
  const drainGrants = (): void => {
    for (let m = receiveMessageOnPort(d.port); m; m = receiveMessageOnPort(d.port)) grants.apply(m.message as GrantMsg);
  };

  /** Answers here (the response) or forwards (null) one event. Never throws. */
  const handle = (ev: FanEvent): void => {
    let answer: number | null = null;
    let fed: Fed | undefined;
    try {
      inflight.note(ev.fd);
      if (grants.size > 0 && ev.range && (ev.mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM)) === 0) {
        const st = fstatSync(ev.fd, { bigint: true });
        const r = grants.decide(`${st.dev}:${st.ino}`, Number(st.size), st.mtimeNs, ev.range);
        if (r.allow) answer = FAN_ALLOW;
        fed = r.fed;
      }
      if (answer === null) {
        post({ t: 'ev', ev, fed });
        return;
      }
    } catch (e) {
      answer = FAN_DENY_EIO;
      report('error', 'recall event thread failed on an event', { op: 'recall', fd: ev.fd, err: e instanceof Error ? e.message : String(e) });
    }
    try {
      closeSync(ev.fd);
    } catch {
      // Already closed: the answer goes by number.
    }
    try {
      respond(d.groupFd, ev.fd, answer);
    } catch (e) {
      report('error', 'fanotify response failed', { op: 'respond', fd: ev.fd, err: e instanceof Error ? e.message : String(e) });
    }
    d.counters[C_EVENTS]!++;
    d.counters[answer === FAN_ALLOW ? C_ALLOWED : C_DENIED]!++;
  };

  post({ t: 'ready' });
  while (Atomics.load(d.ctl, 0) === 0) {
    if (!waitReadable(d.groupFd, IDLE_MS)) continue;
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
      drainGrants();
      for (const ev of decodeEvents(buf, n)) {
        if (ev.fd < 0) post({ t: 'ev', ev });
        else handle(ev);
      }
      if (Atomics.load(d.ctl, 0) !== 0) break;
    }
  }
  post({ t: 'stopped' });
  d.port.close();
}

run(workerData as EventThreadData);
