// Process entry of the worker (spawned by supervisor.ts with the group as fd 3 and an IPC
// channel). Argument: the WorkerConfig as JSON. Exits 0 after a stop, 1 when it cannot
// start (after telling the supervisor why).
//
// Stops: the supervisor's `stop` message ends the daemon (final stop: held-open files
// recalled, marks flushed). A bare SIGTERM while a supervisor holds the group only makes
// way for the next worker (the marks stay). Without a supervisor (it was killed: this
// process is then the group's last holder) the worker serves on, and a SIGTERM is the
// daemon's end: final stop, then the group is closed safely (close-group.ts).
import { writeFileSync } from 'node:fs';
import { jsonLogger, type LogLevel } from '../log.js';
import { tagged } from '../daemon/log-tag.js';
import { closeGroup } from '../daemon/close-group.js';
import { answerStaleEvents } from '../daemon/stale-events.js';
import { runWorker, StartError, type RunningWorker } from './worker.js';
import type { SupervisorMessage, WorkerConfig, WorkerMessage } from '../daemon/worker-config.js';

const cfg = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
const base = jsonLogger((l) => process.stderr.write(l + '\n'), (cfg.logLevel as LogLevel) ?? 'info');
const log = tagged(base, { role: 'worker', rolePid: process.pid });
const send = (m: WorkerMessage, then?: () => void) => {
  if (process.connected && process.send) process.send(m, undefined, {}, () => then?.());
  else then?.();
};
// The supervisor asks the kernel to spare it under OOM (-1000); we inherited that. The
// worker is the one to kill (it is restarted; the supervisor keeps the group): back to 0.
try {
  writeFileSync('/proc/self/oom_score_adj', '0');
} catch {
  // not fatal: only the OOM killer's choice changes
}

let running: RunningWorker | null = null;
let stopping = false;
let orphan = false;
const stop = async (why: string, final: boolean) => {
  if (stopping) return;
  stopping = true;
  log.info('worker stopping', { reason: why, final });
  try {
    await running?.stop({ final, closeGroup: orphan });
    process.exit(0);
  } catch (e) {
    log.error('worker stop failed', { err: e });
    process.exit(1);
  }
};

process.on('SIGTERM', () => void stop('SIGTERM', orphan));
let onServe!: () => void;
const serve = new Promise<void>((r) => (onServe = r));
process.on('message', (m: SupervisorMessage) => {
  if (m?.type === 'stop') void stop('daemon stopping', true);
  else if (m?.type === 'serve') onServe();
});
// A closed log pipe must not take recalls down with it.
process.stderr.on('error', () => {});
process.on('SIGHUP', () => {
  if (running) running.reload();
  else log.warn('SIGHUP ignored: still starting');
});
// Ctrl-C reaches the whole process group: the supervisor decides, then tells us.
process.on('SIGINT', () => {});
// The supervisor died (SIGKILL, OOM): we now hold the group alone. Stopping would close
// it, and readers would read zeros: serve on until a new `tier daemon` takes over or a
// SIGTERM ends the daemon.
process.on('disconnect', () => {
  if (stopping) return;
  orphan = true;
  log.error('supervisor gone: serving on alone until a new tier daemon takes over', { supervisorPid: cfg.supervisorPid });
});
// A handler must never let an exception take the group's events down with it unanswered:
// log and die; the supervisor answers the stale events and restarts us. Alone (orphan) we
// are the group's last holder: answer our own pending events EIO (they are our fd
// numbers), then close the group safely; exiting with them pending would hang the exit
// and then let their readers read zeros.
process.on('uncaughtException', (e) => {
  log.error('worker crashed', { err: e, stack: e.stack });
  if (orphan) {
    try {
      answerStaleEvents(cfg.groupFd, cfg.inflightPath, log);
      closeGroup(cfg.groupFd, log);
    } catch (e2) {
      log.error('closing the group after a crash failed', { err: e2 });
    }
  }
  process.exit(70);
});

const handedOver = () => {
  stopping = true;
  log.info('worker leaving after the handover');
  // Our fd of the group closes with us; the new daemon holds it (and the marks).
  process.exit(0);
};

runWorker(cfg, log, send, { serve, handedOver }).then(
  (w) => {
    running = w;
  },
  (e: unknown) => {
    const message = e instanceof StartError ? e.message : `cannot start: ${(e as Error)?.message ?? String(e)}`;
    process.stderr.write(`tier daemon: ${message}\n`);
    if (!(e instanceof StartError)) log.error('worker start failed', { err: e, stack: (e as Error)?.stack });
    send({ type: 'fatal', message }, () => process.exit(1));
  },
);
