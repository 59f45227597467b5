// `tier daemon`: the small process that owns the fanotify group. A handler that dies
// fails open (blocked readers are let through and read zeros, the marks vanish with the
// group), so the group lives here, in code that does almost nothing, and the worker that
// does the real work (recall, releases, control socket) gets it inherited as fd 3.
//
// Invariants:
// - The group fd stays open here for the supervisor's whole life: a worker crash loses
//   neither the marks nor the readers blocked on them.
// - Once a worker can answer no more events (dying, not only dead: worker-process.ts says
//   why that matters), every permission event it had read and not answered is answered
//   FAN_DENY_ERRNO(EIO) here (stale-events.ts), before the next worker starts, and the
//   in-flight record is then removed: the next worker finds nothing to answer (exactly once).
// - `ready` is printed on stdout once, when the first worker has marked every released file
//   and bound every fileset's backing onto its root.
// - At stop, the roots are detached (backing.ts) after the worker is gone and before the
//   group closes: from then on readers get ENOENT, not zeros.
// - A ready worker that stops sending heartbeats (its event loop is stuck, so every reader
//   waits behind it) is SIGKILLed and replaced.
// - A worker that fails before its first ready (bad policy, unusable state dir) ends the
//   daemon with exit 1; later crashes are restarted with a capped backoff, forever: giving up
//   would close the group and let readers see zeros.
// - The group is closed only through close-group.ts (marks flushed, queue answered), and
//   only when no other daemon serves it: while a taken group is still served by its old
//   worker, or after we handed ours over, nothing here flushes, sweeps or drains it.
// - What the supervisor holds first (state dir, filesystem locks, a new, taken or
//   systemd-restored group) is acquire.ts's; the worker inherits the locks as fds 5...
import type { ChildProcess } from 'node:child_process';
import { closeSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { GroupMode } from '../kernel/fanotify.js';
import type { Logger } from '../log.js';
import { answerStaleEvents } from './stale-events.js';
import type { SupervisorMessage, WorkerConfig } from './worker-config.js';
import { closeGroup } from './close-group.js';
import { acquire, CannotStart, type Acquired } from './acquire.js';
import { requestHandover } from './takeover.js';
import { notifyMainPid, storeGroup, unstoreGroup } from './fd-store.js';
import { startWorker } from './worker-process.js';
import { Drain } from './drain.js';
import { backingsOf, detachBackings, type Backing } from './backing.js';
import { parsePolicyFiles } from './policies.js';
import { reloadWithLocks } from './hup.js';
import type { LockOwner } from './fs-lock.js';

export interface SupervisorOptions {
  policyFiles: string[];
  stateDir: string;
  logLevel: string;
  metricsListen?: string;
  reconcileIntervalMs?: number;
  /** Take over the daemon running on the same filesystems (its group, marks and state dir). */
  takeover?: boolean;
  log: Logger;
  /** Writes one line to stdout (the `ready` line). */
  out(line: string): void;
  /** Writes one line for the user to stderr (why the daemon cannot start). */
  err(line: string): void;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 10_000;
const STABLE_MS = 60_000; // a worker up this long resets the backoff
const STOP_GRACE_MS = 60_000; // then SIGKILL (the worker's stop may recall held-open files: 20 s budget)

/** Runs until SIGTERM/SIGINT (exit 0) or a worker that cannot start (exit 1). */
export async function runSupervisor(o: SupervisorOptions): Promise<number> {
  const stateDir = resolve(o.stateDir);
  const policyFiles = o.policyFiles.map((p) => resolve(p));
  const gate = readBackings(policyFiles);
  if (gate.problems.length > 0) {
    o.err(`tier daemon: ${gate.problems.join('\n')}`);
    return 1;
  }
  let child: ChildProcess | null = null; // the worker serving (or starting), if any
  const lockFds: Record<string, number> = {}; // device -> fd number in the worker
  let mode: GroupMode | undefined;
  let got: Acquired;
  const owner = (): LockOwner => ({ supervisorPid: process.pid, workerPid: child?.pid ?? null, stateDir, groupFd: 3, mode, lockFds });
  try {
    got = await acquire({
      policyFiles: o.policyFiles,
      stateDir,
      takeover: o.takeover ?? false,
      log: o.log,
      owner,
    });
  } catch (e) {
    if (!(e instanceof CannotStart)) throw e;
    o.log.error(e.message);
    o.err(`tier daemon: ${e.message}`);
    return 1;
  }
  const { unlock, locks, groupFd, taken, restored } = got;
  mode = got.mode;
  // Each worker gets the locks as fds 5... (after stdin/out/err, the group and the IPC channel).
  const numberLocks = () => {
    for (const k of Object.keys(lockFds)) delete lockFds[k];
    let slot = 5;
    for (const dev of locks.fds.keys()) lockFds[String(dev)] = slot++;
  };
  numberLocks();
  spareFromOom(o.log);
  const inflightPath = join(stateDir, 'inflight');
  // shared: another daemon's worker serves this group (we took it, it has not handed over
  // yet); handedOver: we gave it away. Either way: no flush, no sweep, no drain here.
  let shared = taken !== null;
  let handedOver = false;

  const dying = new Set<ChildProcess>(); // gone (answers nothing more) but not exited yet
  const drain = new Drain(groupFd, o.log);
  let stopping = false;
  let exitCode: number | null = null; // set once the daemon is to end
  let everReady = false;
  let backoff = BACKOFF_MIN_MS;
  let restartTimer: NodeJS.Timeout | null = null;
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));

  const config: WorkerConfig = {
    policyFiles,
    stateDir,
    backings: gate.backings,
    logLevel: o.logLevel,
    mode,
    groupFd: 3,
    inflightPath,
    freshGroup: taken === null && !restored,
    standby: taken !== null,
    supervisorPid: process.pid,
    lockFds,
    metricsListen: o.metricsListen,
    ...(o.reconcileIntervalMs !== undefined ? { reconcileIntervalMs: o.reconcileIntervalMs } : {}),
  };

  const start = () => {
    restartTimer = null;
    if (stopping) return;
    drain.stop(); // the new worker must be the group's only reader
    numberLocks(); // a reload may have added or dropped some
    const startedAt = Date.now();
    let fatal: string | null = null;
    const c: ChildProcess = startWorker(config, groupFd, [...locks.fds.values()], o.log, {
      ready(m) {
        o.log.info('worker ready', { workerPid: c.pid, marked: m.marked, skipped: m.skipped });
        if (!everReady) {
          everReady = true;
          o.out('ready');
        }
      },
      fatal(message) {
        fatal = message;
      },
      standby() {
        // Our worker is ready to read: ask the old one to stop reading, then let ours.
        // Under systemd we are the unit's main process from now on (the old supervisor
        // exits after the handover; systemd must not take that for the unit's end).
        const t0 = Date.now();
        notifyMainPid(process.pid, o.log);
        requestHandover(stateDir).then(
          (r) => {
            shared = false;
            o.log.info('took over the group: the old worker handed over', { oldWorkerPid: r.pid, ms: Date.now() - t0 });
            c.send({ type: 'serve' } satisfies SupervisorMessage);
          },
          (e: unknown) => {
            if (taken?.supervisorPid) notifyMainPid(taken.supervisorPid, o.log); // it stays the main one
            const msg = `takeover failed, the running daemon keeps serving: ${(e as Error).message}`;
            o.log.error(msg);
            o.err(`tier daemon: ${msg}`);
            exitCode = 1;
            stopping = true;
            c.kill('SIGKILL');
          },
        );
      },
      handingOver() {
        // A new daemon took the group and is about to read it: from now on nothing here
        // touches the group (no sweep, no drain, no flush); we exit with our worker.
        handedOver = true;
        stopping = true;
        exitCode = 0;
        if (restartTimer) clearTimeout(restartTimer);
        o.log.info('handing the group over to a new daemon', { workerPid: c.pid });
      },
      reloaded(ok) {
        onReloaded?.(ok);
      },
      locked(dev, fd) {
        lockFds[String(dev)] = fd;
      },
      quiesced() {
        if (stopping && !handedOver) drain.start();
      },
      gone() {
        if (handedOver || shared) {
          // The group is served by another daemon's worker: its fd numbers are not ours to sweep.
          if (child === c) child = null;
          dying.add(c);
          if (!stopping) {
            exitCode = 1;
            stopping = true;
          }
          return;
        }
        // Answer what it left, then keep answering (EIO) until the next worker reads.
        const stale = answerStaleEvents(groupFd, inflightPath, o.log);
        if (stale.answered > 0) o.log.warn('answered stale events with EIO', { workerPid: c.pid, count: stale.answered });
        if (child === c) child = null;
        dying.add(c);
        drain.start();
        if (stopping) return;
        if (!everReady) {
          if (fatal === null) o.log.error('worker failed before it was ready', { workerPid: c.pid });
          exitCode = 1;
          stopping = true;
          return;
        }
        if (Date.now() - startedAt > STABLE_MS) backoff = BACKOFF_MIN_MS;
        o.log.warn('restarting worker', { workerPid: c.pid, inMs: backoff, reason: fatal ?? undefined });
        restartTimer = setTimeout(start, backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      },
      exit(code, signal) {
        dying.delete(c);
        o.log[stopping && exitCode === 0 ? 'info' : 'error']('worker exited', { workerPid: c.pid, code, signal });
        maybeFinish();
      },
    });
    config.freshGroup = false; // every later worker inherits the marks
    config.standby = false;
    child = c;
    o.log.info('worker started', { workerPid: c.pid, mode });
    c.on('error', (e) => {
      // spawn itself failed (no 'exit' follows when there is no process): retry later.
      o.log.error('worker spawn failed', { err: e });
      if (c.pid === undefined && !stopping) {
        child = null;
        drain.start();
        restartTimer = setTimeout(start, backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    });
  };

  const maybeFinish = () => {
    if (exitCode !== null && child === null && dying.size === 0) shutdown(exitCode);
  };

  const shutdown = (code: number) => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.off(s, onSignal);
    process.off('uncaughtException', onBug);
    process.off('SIGHUP', onHup);
    drain.stop();
    if (drain.answered > 0) o.log.warn('events answered EIO while no worker served', { count: drain.answered });
    // Marks flushed, queued events answered, then closed: a close with readers waiting
    // would hang here and let them read zeros (close-group.ts).
    if (handedOver || shared) closeSync(groupFd);
    else {
      // Stop step "detach roots", again (the worker's own step before its marks go runs
      // first; this covers a worker that died during its stop). Final stop only: a
      // daemon that handed its group over leaves the bind to its successor.
      detachBackings(gate.backings, o.log);
      unstoreGroup(got.mode, o.log); // its marks go now: a stored group must have them
      closeGroup(groupFd, o.log);
    }
    locks.close();
    unlock();
    o.log.info('daemon stopped', { code });
    finish(code);
  };

  let killTimer: NodeJS.Timeout | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    o.log.info('stopping', { signal: sig });
    if (handedOver) return; // the worker is already leaving
    if (restartTimer) clearTimeout(restartTimer);
    const c = child as ChildProcess | null;
    if (stopping) {
      for (const w of [c, ...dying]) w?.kill('SIGKILL'); // second signal: do not wait
      return;
    }
    stopping = true;
    exitCode = 0;
    if (!c) return maybeFinish();
    // The final stop (held-open files, flush: stop-sequence.ts); a bare SIGTERM would
    // only make the worker give way to a successor.
    if (c.connected) c.send({ type: 'stop' } satisfies SupervisorMessage);
    else c.kill('SIGTERM');
    killTimer = setTimeout(() => {
      o.log.error('worker did not stop in time: killing it', { workerPid: c.pid, graceMs: STOP_GRACE_MS });
      c.kill('SIGKILL');
    }, STOP_GRACE_MS);
    killTimer.unref();
  };
  for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, onSignal);
  let onReloaded: ((ok: boolean) => void) | null = null;
  const askWorker = (): Promise<boolean> => {
    const c = child as ChildProcess | null;
    if (!c?.connected) {
      o.log.warn('reload ignored: no worker serves right now (restarting?); send SIGHUP again', { op: 'reload' });
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => done(false), 60_000);
      const done = (ok: boolean) => {
        clearTimeout(t);
        onReloaded = null;
        resolve(ok);
      };
      onReloaded = done;
      c.send({ type: 'reload' } satisfies SupervisorMessage);
    });
  };
  let hups = Promise.resolve(); // one reload at a time
  const onHup = () => {
    o.log.info('SIGHUP: asking the worker to reload the policies');
    hups = hups.then(() =>
      reloadWithLocks({ policyFiles, locks, owner, lockFds, log: o.log, worker: () => child, askWorker }).catch((e: unknown) =>
        o.log.error('reload failed', { op: 'reload', err: e }),
      ),
    );
  };
  process.on('SIGHUP', onHup);
  // This process must outlive anything that goes wrong in it: if it died, the group would
  // close and every blocked reader would read zeros. A closed stdout/stderr pipe (EPIPE)
  // or a bug is logged, not fatal.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  const onBug = (e: unknown) => o.log.error('supervisor error (kept running)', { err: e, stack: (e as Error)?.stack });
  process.on('uncaughtException', onBug);

  // A stale record from a previous daemon run holds fd numbers of a group that is gone.
  // (A group restored from systemd's fd store had its stale events answered in acquire();
  // a taken group is still served by its old worker: nothing of it is ours to answer.)
  if (!taken && !restored) answerStaleEvents(-1, inflightPath, o.log);
  storeGroup(groupFd, got.mode, o.log);
  start();
  const code = await done;
  if (killTimer) clearTimeout(killTimer);
  return code;
}

/**
 * The backings to bind and detach, read once here: the supervisor detaches them at stop
 * whatever state the worker is in. Invalid policy files give none: the worker refuses them
 * with the diagnostics.
 */
function readBackings(policyFiles: string[]): { backings: Backing[]; problems: string[] } {
  const parsed = parsePolicyFiles(policyFiles);
  return parsed.ok ? backingsOf(parsed.policies) : { backings: [], problems: [] };
}

/**
 * The OOM killer must not pick this process: it holds the group, and the worker that
 * does the work (and the allocating) sets itself back to 0 (worker-main.ts).
 */
function spareFromOom(log: Logger): void {
  try {
    writeFileSync('/proc/self/oom_score_adj', '-1000');
  } catch (e) {
    log.warn('cannot lower oom_score_adj', { err: e });
  }
}
