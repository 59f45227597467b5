// File leases (F_SETLEASE/F_GETLEASE) and the SIGIO they raise.
//
// Node dies (exit 157) on SIGIO without a listener, so the first setLease() installs
// one process-wide handler. The kernel does not say which lease broke (F_SETSIG is not
// used), so every registered listener is told "some lease broke: check yours" and
// calls getLease() on its own fds.
//
// holdLease() gives a broken lease up inside the SIGIO listener itself, before anything
// awaits: an engine that first waits for its I/O to settle can wait on an opener that
// waits on the lease (measured: a pread raising a pre-content event whose event fd this
// very lease blocks, 45 s until lease-break-time; docs/engine.md).
import { fcntl } from './libc.js';

export const F_SETLEASE = 1024;
export const F_GETLEASE = 1025;
export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;

export type LeaseKind = 'read' | 'write' | 'unlock';

const KIND: Record<LeaseKind, number> = { read: F_RDLCK, write: F_WRLCK, unlock: F_UNLCK };

/** Takes or drops a lease. Throws EAGAIN when another open of the file exists. */
export function setLease(fd: number, kind: LeaseKind, path?: string): void {
  if (kind !== 'unlock') installSigio();
  fcntl(fd, F_SETLEASE, KIND[kind], path);
}

/**
 * The lease currently held. After a break starts: a write lease reads 'read' when a
 * reader is waiting, 'unlock' when a writer is waiting, and 'unlock' when none is held.
 */
export function getLease(fd: number, path?: string): LeaseKind {
  const v = fcntl(fd, F_GETLEASE, undefined, path);
  return v === F_WRLCK ? 'write' : v === F_RDLCK ? 'read' : 'unlock';
}

type Listener = () => void;
const listeners = new Set<Listener>();
let installed = false;

function installSigio(): void {
  if (installed) return;
  installed = true;
  process.on('SIGIO', () => {
    for (const l of [...listeners]) {
      try {
        l();
      } catch {
        // A listener's failure must not stop the others from checking their leases.
      }
    }
  });
}

/** Registers a callback for "some lease broke"; returns the unregister function. */
export function onLeaseBreak(l: Listener): () => void {
  installSigio();
  listeners.add(l);
  return () => listeners.delete(l);
}

/** A write lease taken by holdLease(). */
export interface LeaseGuard {
  /** The lease broke (an opener came) and was given up at once. */
  readonly broken: boolean;
  /** Stops watching and unlocks (unless already given up); throws what F_UNLCK throws. */
  release(): void;
}

/**
 * Takes a write lease on fd (throws EAGAIN when another open exists) and watches it: on
 * SIGIO, if it is no longer F_WRLCK, unlocks at once and then calls onBreak. The opener
 * never waits for our cleanup; the caller must treat `broken` as "nothing destructive".
 */
export function holdLease(fd: number, path: string, onBreak: () => void): LeaseGuard {
  setLease(fd, 'write', path);
  let broken = false;
  let held = true;
  const stop = onLeaseBreak(() => {
    if (!held || getLease(fd, path) === 'write') return;
    held = false;
    broken = true;
    try {
      setLease(fd, 'unlock', path);
    } catch {
      // Already gone (expired or never ours again): the opener is free either way.
    }
    onBreak();
  });
  return {
    get broken() {
      return broken;
    },
    release() {
      stop();
      if (!held) return;
      held = false;
      setLease(fd, 'unlock', path);
    },
  };
}
