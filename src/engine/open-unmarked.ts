// The fd the archive/release protocol reads and punches through: one that can raise no
// fanotify pre-content event, because the inode carried no mark of ours when it was opened.
//
// Why (measured, docs/engine.md "Opening"): a file's fanotify mode is fixed at open. A
// released or partial file written past its end is 'dirty' but still marked, so the
// engine's open got HSM mode; the handler completes its recall at that open and unmarks
// it, but the engine's own pre-lease mark comes back, and the upload's pread then raised
// FAN_PRE_ACCESS under our lease. Our group's read can only create that event's fd by
// breaking our lease, while the abort waited for the pread: 45 s (lease-break-time),
// then "unlock failed EAGAIN". Stacks: pread64 in fanotify_handle_event, our fanotify_read
// in __break_lease, /proc/locks BREAKING with our pid as breaker.
//
// So: open once to look (never leased, never uploaded from), make sure the data is all
// local, remove any mark through that fd, close it and open again. The look is read-only:
// closing an fd opened for writing raises FAN_CLOSE_WRITE, and the change tracker's event
// fd for it would break the lease we take next (measured: every release 'busy').
// - Data not all local (record released/partial, size changed): one read through the
//   probe fd, without a lease, lets the recall service finish the recall (it fills the
//   whole file, records 'dirty' and unmarks); still released/partial after that: refused.
//   Without this, holes would be uploaded as zeros.
// - A mark is removed only when the record says the data is all local: a file with holes
//   never loses its mark (an opener would read zeros).
// - Per-inode lock: while we hold it no other migration in this process can mark the
//   inode between our unmark and our second open (marks come only from migrations and
//   from start-up marking, which runs before any migration).
import { closeSync, constants, fstatSync, open, read, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import { fgetxattr } from '../kernel/libc.js';
import { deriveState } from './facts.js';
import { decodeRecord, XATTR_STATE, type StateRecord } from '../record/state-record.js';
import { withMarkedIo } from './marked-io.js';

const openAsync = promisify(open);
const preadAsync = promisify(read);

const busyInodes = new Set<string>();

/** A migration of this inode runs in this process. */
export const inodeLocked = (key: string): boolean => busyInodes.has(key);

/** Takes the per-inode migration lock of this process; null when a migration holds it. */
export function lockInode(key: string): (() => void) | null {
  if (busyInodes.has(key)) return null;
  busyInodes.add(key);
  let held = true;
  return () => {
    if (held) busyInodes.delete(key);
    held = false;
  };
}

export interface UnmarkedOptions {
  flags: number;
  /** What to open instead of absPath: the caller's checked inode as `/proc/self/fd/N` (kernel/beneath.ts). */
  at?: string;
  /** The record peeked by path before opening said released/partial (the inode was marked). */
  wasMarked: boolean;
  /** Removes any mark of our group on the inode behind fd (absent: no group in this process). */
  clearMark?: (fd: number) => void | Promise<void>;
}

type Failure = { ok: false; status: 'busy' | 'failed' | 'skipped'; message: string; code?: string };
/** ok: fd is ours to close, unlock() frees the inode lock. Failure: nothing left open or locked. */
export type Unmarked = { ok: true; fd: number; unlock: () => void } | Failure;

const fail = (status: Failure['status'], message: string, code?: string): Failure => ({ ok: false, status, message, ...(code ? { code } : {}) });
const isMarkedState = (r: StateRecord | null): boolean => r?.state === 'released' || r?.state === 'partial';

/** The caller's flags, read-only. */
const O_ACCMODE = 3; // not in node:fs constants
const lookFlags = (flags: number): number => (flags & ~O_ACCMODE) | constants.O_RDONLY;

/** O_NOFOLLOW would refuse the magic link `/proc/self/fd/N` itself (ELOOP): the inode behind it was checked. */
const openFlags = (o: UnmarkedOptions): number => (o.at ? o.flags & ~constants.O_NOFOLLOW : o.flags);

/** Async: a marked file's open raises an event that the recall service, maybe on this event loop, answers. */
async function openFile(absPath: string, flags: number): Promise<number | Failure> {
  try {
    return await openAsync(absPath, flags);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return fail('failed', `open: ${err.code === 'ELOOP' ? 'is a symlink' : err.message}`, err.code);
  }
}

/** Opens absPath for the release protocol: see the top of this file. */
export async function openUnmarked(absPath: string, o: UnmarkedOptions): Promise<Unmarked> {
  // A marked file's open waits on a threadpool thread for our own handler (marked-io.ts).
  const look = () => openFile(o.at ?? absPath, lookFlags(openFlags(o)));
  const probe = await (o.wasMarked ? withMarkedIo(look) : look());
  if (typeof probe !== 'number') return probe;
  let st: BigIntStats;
  try {
    st = fstatSync(probe, { bigint: true });
  } catch (e) {
    closeSync(probe);
    return fail('failed', `fstat: ${(e as Error).message}`);
  }
  if (!st.isFile()) {
    closeSync(probe);
    return fail('skipped', 'not a regular file');
  }
  const unlock = lockInode(`${st.dev}:${st.ino}`);
  if (!unlock) {
    closeSync(probe);
    return fail('busy', 'busy: another action is migrating it');
  }
  let out: number | Failure;
  try {
    out = await settle(absPath, probe, st, o);
  } catch (e) {
    out = fail('failed', (e as Error).message);
  }
  if (typeof out === 'number') return { ok: true, fd: out, unlock };
  unlock();
  return out;
}

/** From the probe fd to the working fd (the probe itself when it can carry no event). Closes what it does not return. */
async function settle(absPath: string, probe: number, st: BigIntStats, o: UnmarkedOptions): Promise<number | Failure> {
  let keep = false;
  try {
    let rec = decodeRecord(fgetxattr(probe, XATTR_STATE, absPath));
    const wasMarked = o.wasMarked || isMarkedState(rec);
    if (isMarkedState(rec)) {
      const now = deriveState(rec, { size: Number(st.size), mtimeNs: st.mtimeNs.toString() });
      // Unchanged released/partial: the caller skips it; it is never leased through this fd.
      if (now === 'released' || now === 'partial') {
        keep = true;
        return probe;
      }
      // Written since release: part of its data is only on the tier. A read lets the recall
      // service finish the recall (it fills the whole file); no lease is held here.
      try {
        await withMarkedIo(() => preadAsync(probe, Buffer.alloc(1), 0, 1, 0));
      } catch (e) {
        return fail('failed', `recall before upload (written after release): ${(e as Error).message}`);
      }
      rec = decodeRecord(fgetxattr(probe, XATTR_STATE, absPath));
      if (isMarkedState(rec)) {
        return fail('failed', `written after release but not recalled whole: the rest of its data is only on tier ${rec?.copy?.tier ?? '?'} (the recall service of \`tier daemon\` completes it)`);
      }
    }
    // All data is local: a mark of ours on it is stale (or the handler's leftover) and may go.
    if (o.clearMark) await o.clearMark(probe);
    else if (!wasMarked && lookFlags(o.flags) === o.flags) {
      keep = true; // no group in this process, and nothing says it was marked
      return probe;
    }
  } finally {
    if (!keep) closeSync(probe);
  }
  const fd = await openFile(o.at ?? absPath, openFlags(o));
  if (typeof fd !== 'number') return fd;
  try {
    const st2 = fstatSync(fd, { bigint: true });
    if (st2.dev === st.dev && st2.ino === st.ino) return fd;
  } catch {
    // handled below like a replaced file
  }
  closeSync(fd);
  return fail('busy', 'file replaced while opening: next run');
}
