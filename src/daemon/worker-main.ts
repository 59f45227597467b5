// Process entry of the worker (spawned by supervisor.ts with the group as fd 3 and an IPC
// channel). Argument: the WorkerConfig as JSON. Exits 0 after SIGTERM, 1 when it cannot
// start (after telling the supervisor why).
import { jsonLogger, type LogLevel } from '../log.js';
import { tagged } from './log-tag.js';
import { runWorker, StartError, type RunningWorker } from './worker.js';
import type { WorkerConfig, WorkerMessage } from './worker-config.js';

const cfg = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
const base = jsonLogger((l) => process.stderr.write(l + '\n'), (cfg.logLevel as LogLevel) ?? 'info');
const log = tagged(base, { role: 'worker', rolePid: process.pid });
const send = (m: WorkerMessage, then?: () => void) => {
  if (process.connected && process.send) process.send(m, undefined, {}, () => then?.());
  else then?.();
};

let running: RunningWorker | null = null;
let stopping = false;
const stop = async (why: string) => {
  if (stopping) return;
  stopping = true;
  log.info('worker stopping', { reason: why });
  try {
    await running?.stop();
    process.exit(0);
  } catch (e) {
    log.error('worker stop failed', { err: e });
    process.exit(1);
  }
};

process.on('SIGTERM', () => void stop('SIGTERM'));
// A closed log pipe must not take recalls down with it.
process.stderr.on('error', () => {});
process.on('SIGHUP', () => {
  if (running) running.reload();
  else log.warn('SIGHUP ignored: still starting');
});
// Ctrl-C reaches the whole process group: the supervisor decides, then sends SIGTERM.
process.on('SIGINT', () => {});
// Without a supervisor nobody restarts us or answers for us after a crash: stop cleanly.
process.on('disconnect', () => void stop('supervisor gone'));
// A handler must never let an exception take the group's events down with it unanswered:
// log and die; the supervisor answers the stale events and restarts us.
process.on('uncaughtException', (e) => {
  log.error('worker crashed', { err: e, stack: e.stack });
  process.exit(70);
});

runWorker(cfg, log, send).then(
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
