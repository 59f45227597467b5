// One worker process as the supervisor sees it: spawned with the group as fd 3 and an IPC
// channel, watched for heartbeats, and reported `gone` as soon as it can answer no more
// events — which can be long before Node's 'exit' event.
//
// Why not wait for 'exit': a dying worker closes its other fanotify groups (e.g. the change
// tracker's), and the kernel's group teardown waits until every permission event pending on
// an object that group also marks is answered (a waiting reader pins every mark of the
// object: the group's user_waits; observed: worker stuck in fsnotify_destroy_group). Those
// events belong to our main group, and only the supervisor can answer them once the worker
// is dying: waiting for 'exit' before answering is a deadlock. So the supervisor answers on `gone`, which
// fires when the worker's main thread has PF_EXITING set (it runs no more JS) or is a
// zombie, or at 'exit', whichever comes first, exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { extname, join } from 'node:path';
import type { Logger } from '../log.js';
import { WEDGED_MS, type WorkerConfig, type WorkerMessage } from './worker-config.js';

export interface WorkerEvents {
  ready(m: { marked: number; skipped: number }): void;
  fatal(message: string): void;
  /** Started in standby (takeover): ready to read once the old worker handed over. */
  standby(): void;
  /** A new daemon took the group: this worker stopped reading for it and leaves. */
  handingOver(): void;
  /** Answer to a `reload` message. */
  reloaded(ok: boolean): void;
  /** Answer to a `lock` message: the lock's fd number in the worker. */
  locked(dev: number, fd: number): void;
  /** Stopping: it reads no more events (answered all it read). */
  quiesced(): void;
  /** The worker will answer no more events (called once, before or at exit). */
  gone(): void;
  exit(code: number | null, signal: NodeJS.Signals | null): void;
}

/**
 * The worker's young generation stays at the size start-up gives it (8 MiB semi-spaces, 16
 * MiB in all). V8 doubles it (Node 20: up to 16 MiB semi-spaces; Node 24 grows its new space
 * to 128 MiB, measured), once enough bytes have survived
 * scavenges in total, and gives nothing back while the worker idles: after the start-up
 * reconcile pass over 100,000 files the new space held 32 MiB, 16 of them resident for good,
 * ~8% of the daemon's RSS (bench/b9-memory.ts). A flag, as a last resort: the pass already
 * builds its per-file objects one at a time and trims malloc after itself (reconcile-loop.ts);
 * what it allocates is short-lived, so a smaller new space costs a few more scavenges only.
 */
const WORKER_V8_FLAGS = ['--max-semi-space-size=8'];

/** Ours, unless the admin set the same flag (NODE_OPTIONS is read before the command line, so ours would win there). */
function workerV8Flags(): string[] {
  const theirs = `${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`;
  return /--max[-_]semi[-_]space[-_]size/.test(theirs) ? [] : WORKER_V8_FLAGS;
}

const WATCH_MS = 100;
const PF_EXITING = 0x4;

/** lockFds: the filesystem locks (fs-lock.ts), inherited as fds 5, 6, ... (config.lockFds). */
export function startWorker(config: WorkerConfig, groupFd: number, lockFds: number[], log: Logger, ev: WorkerEvents): ChildProcess {
  // execArgv carries `--import tsx` when running from source (and any flag of the admin's).
  const c = spawn(process.execPath, [...workerV8Flags(), ...process.execArgv, workerEntry(), JSON.stringify(config)], {
    // fd 3 in the child is the group; the worker's stdout goes to our stderr so that
    // only the supervisor ever writes to stdout.
    stdio: ['ignore', 2, 2, groupFd, 'ipc', ...lockFds],
  });
  let ready = false;
  let lastAlive = Date.now();
  let gone = false;
  let killed = false;
  const markGone = () => {
    if (gone) return;
    gone = true;
    ev.gone();
  };
  const watch = setInterval(() => {
    if (c.pid === undefined || gone) return;
    if (isExiting(c.pid)) return markGone();
    if (ready && !killed && Date.now() - lastAlive > WEDGED_MS) {
      log.error('worker stopped answering (event loop stuck): killing it', { workerPid: c.pid, silentMs: Date.now() - lastAlive });
      killed = true;
      c.kill('SIGKILL');
    }
  }, WATCH_MS);
  c.on('message', (m: WorkerMessage) => {
    if (m?.type === 'alive') lastAlive = Date.now();
    else if (m?.type === 'ready') {
      ready = true;
      lastAlive = Date.now();
      ev.ready(m);
    } else if (m?.type === 'fatal') ev.fatal(m.message);
    else if (m?.type === 'quiesced') ev.quiesced();
    else if (m?.type === 'standby') ev.standby();
    else if (m?.type === 'handing-over') ev.handingOver();
    else if (m?.type === 'reloaded') ev.reloaded(m.ok);
    else if (m?.type === 'locked') ev.locked(m.dev, m.fd);
  });
  c.on('exit', (code, signal) => {
    clearInterval(watch);
    markGone();
    ev.exit(code, signal);
  });
  return c;
}

/** True once the process runs no more user code: PF_EXITING on its main thread, or gone. */
function isExiting(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true;
  }
  // Fields after "(comm) ": state ppid pgrp session tty_nr tpgid flags ...
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = f[0];
  const flags = Number(f[6]);
  return state === 'Z' || state === 'X' || (flags & PF_EXITING) !== 0;
}

/** The worker entry (src/worker/worker-main): .ts under tsx, .js once compiled. */
function workerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return join(here, '..', '..', 'worker', `worker-main${extname(here)}`);
}
