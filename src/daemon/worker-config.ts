// What the supervisor hands the worker (one JSON argument) and what the worker tells it
// back over the IPC channel.
import type { GroupMode } from '../kernel/fanotify.js';
import type { Backing } from './backing.js';

export interface WorkerConfig {
  policyFiles: string[]; // absolute
  stateDir: string; // absolute
  logLevel: string;
  mode: GroupMode;
  /** The inherited fanotify group: always 3 (stdio slot 3 of the spawn). */
  groupFd: number;
  /** Where the recall service keeps the fd numbers of events it is serving. */
  inflightPath: string;
  /**
   * True for the first worker of a group. A restarted worker inherits the marks (they live
   * in the group) and must not open marked files to mark them again: with FAN_OPEN_PERM in
   * the mask, its own synchronous open() would wait for an answer only it can give.
   */
  freshGroup: boolean;
  /**
   * The filesets' backings as the supervisor read them at start: every worker of the group
   * binds these (a reload cannot change them: the marks were placed for these).
   */
  backings: Backing[];
  /** "PORT" or "HOST:PORT" (loopback) for GET /metrics; absent: only on the control socket. */
  metricsListen?: string;
  /**
   * Takeover: the group is still served by another daemon's worker. Prepare everything,
   * send `standby`, and read the group only after the supervisor's `serve`.
   */
  standby?: boolean;
  /** Inherited filesystem locks (fs-lock.ts): device -> fd number in the worker. */
  lockFds?: Record<string, number>;
  /** The supervisor's pid (its fds are ours, not a reader's). */
  supervisorPid?: number;
  /** Reconciliation passes: every this many ms after one at start; 0: none (default 24 h). */
  reconcileIntervalMs?: number;
}

export type WorkerMessage =
  | { type: 'ready'; marked: number; skipped: number }
  /** Sent every HEARTBEAT_MS once ready: proof the event loop still turns. */
  | { type: 'alive' }
  /** Stopping: every event read was answered and no more will be read; the supervisor drains. */
  | { type: 'quiesced' }
  /** Standby worker (takeover) ready to read. */
  | { type: 'standby' }
  /** A new daemon took the group: we stopped reading it; the supervisor must not touch it. */
  | { type: 'handing-over' }
  /** Answer to `reload`: were the policy files taken (false: rejected, logged)? */
  | { type: 'reloaded'; ok: boolean }
  /** Answer to `lock`: the fd number of that lock in the worker (for a takeover). */
  | { type: 'locked'; dev: number; fd: number }
  /** The worker cannot start (bad policy, state dir...): the message is for the user. */
  | { type: 'fatal'; message: string };

/** What the supervisor tells the worker. */
export type SupervisorMessage =
  /** The daemon ends: serve held-open files, flush the marks, answer all, exit 0. */
  | { type: 'stop' }
  /** Takeover: the old worker handed over; start reading the group now. */
  | { type: 'serve' }
  /** SIGHUP: re-read the policy files, answer `reloaded`. */
  | { type: 'reload' }
  /** A reload added a filesystem: its lock comes with the message (a net.Server handle). */
  | { type: 'lock'; dev: number }
  /** A reload dropped a filesystem: close its lock. */
  | { type: 'unlock'; dev: number };

export const HEARTBEAT_MS = 1_000;
/**
 * A ready worker silent this long has its event loop stuck (e.g. a synchronous open() of
 * a marked file inside the worker waits for an answer only that same thread could give):
 * every reader is blocked behind it, so the supervisor kills it and starts another.
 */
export const WEDGED_MS = 15_000;
