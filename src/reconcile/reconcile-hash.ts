// Reconcile's content check of one archived, fully local file: is its tier copy still
// its content? Hashes the file and compares with the record's SHA-256; on a mismatch
// (and not a dry run) the record becomes 'dirty', so the next release uploads anew.
//
// Invariants:
// - only a file whose record says 'archived' is read: a released/partial file is marked
//   and reading it would recall it. The record is re-read through our fd before reading.
// - the path is resolved beneath the scan's root, no symlink, and the scan's inode checked
//   (kernel/beneath.ts) before the open, which goes through that inode's magic link.
// - the open is asynchronous (thread pool) and O_NONBLOCK: a file the engine holds a
//   lease on gives EAGAIN at once instead of waiting for (or breaking) that lease; a
//   synchronous open on the daemon's main thread could wait for a lease break only that
//   thread's SIGIO handler can deliver.
// - hashing holds a read lease: no writer can open the file meanwhile (a writer's open
//   breaks it, SIGIO aborts the hash), so "hash matched and ctime unchanged" proves the
//   content, even against writers through a shared mapping (a live one makes the lease
//   fail: busy). The record and stat are re-checked after hashing.
import { close, constants, fstatSync, open, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import { fgetxattr, fsetxattr } from '../kernel/libc.js';
import { BeneathError, pinBeneath, type Pinned } from '../kernel/beneath.js';
import { getLease, onLeaseBreak, setLease } from '../kernel/lease.js';
import { decodeRecord, encodeRecord, XATTR_STATE, type StateRecord } from '../record/state-record.js';
import { GaveUp, hashAsCopy } from '../engine/verify-copy.js';
import { withMarkedIo } from '../engine/marked-io.js';

const openAsync = promisify(open);
const closeAsync = promisify(close);
const FLAGS = constants.O_RDONLY | constants.O_NOATIME | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export type HashCheck =
  | { kind: 'match'; bytes: number; ctimeNs: string }
  | { kind: 'mismatch'; bytes: number; sha256: string; marked: boolean }
  | { kind: 'skipped'; why: string };

/** What the scan saw; the file must still be exactly this when hashed. */
export interface Expected {
  /** The fileset root the scan walked: the path is resolved beneath it (kernel/beneath.ts). */
  root?: string;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  record: StateRecord;
}

const sameStat = (a: BigIntStats, e: Expected) =>
  Number(a.dev) === e.dev && Number(a.ino) === e.ino && Number(a.size) === e.size && a.mtimeNs.toString() === e.mtimeNs && a.ctimeNs.toString() === e.ctimeNs;

const sameRecord = (r: StateRecord | null, e: StateRecord) =>
  r !== null && r.state === 'archived' && r.gen === e.gen && r.copy?.key === e.copy?.key && r.copy?.sha256 === e.copy?.sha256;

/** `yieldTo`: checked before the lease and between chunks; true: give the file up (skipped). */
export async function checkArchivedCopy(absPath: string, e: Expected, dryRun: boolean, signal?: AbortSignal, yieldTo?: () => boolean): Promise<HashCheck> {
  let fd: number;
  let pin: Pinned;
  try {
    pin = pinBeneath(absPath, e.root ?? null, { dev: e.dev, ino: e.ino });
  } catch (err) {
    return { kind: 'skipped', why: err instanceof BeneathError && err.code === 'REPLACED' ? 'changed since the scan' : (err as Error).message };
  }
  try {
    fd = await withMarkedIo(() => openAsync(pin.proc, FLAGS & ~constants.O_NOFOLLOW)); // the checked inode's magic link; under a filesystem mark the open waits for our handler
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { kind: 'skipped', why: code === 'EAGAIN' || code === 'EWOULDBLOCK' ? 'busy: leased by the engine' : `open: ${code ?? (err as Error).message}` };
  } finally {
    pin.close();
  }
  let leased = false;
  let stop = () => {};
  const ac = new AbortController();
  const onOuter = () => ac.abort(signal?.reason);
  signal?.addEventListener('abort', onOuter, { once: true });
  try {
    if (!sameStat(fstatSync(fd, { bigint: true }), e)) return { kind: 'skipped', why: 'changed since the scan' };
    // Read through the fd we hold: the record says whether reading is safe (never a marked file).
    if (!sameRecord(decodeRecord(fgetxattr(fd, XATTR_STATE, absPath)), e.record)) return { kind: 'skipped', why: 'record changed since the scan' };
    if (yieldTo?.()) return { kind: 'skipped', why: 'not hashed: the engine is migrating' };
    try {
      setLease(fd, 'read', absPath);
      leased = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return { kind: 'skipped', why: 'busy: open for writing' };
      throw err;
    }
    stop = onLeaseBreak(() => {
      if (!ac.signal.aborted && getLease(fd, absPath) !== 'read') ac.abort(new Error('a writer opened the file'));
    });
    let hashed;
    try {
      hashed = await hashAsCopy(fd, e.record.copy, ac.signal, yieldTo);
    } catch (err) {
      if (err instanceof GaveUp) return { kind: 'skipped', why: 'not hashed: the engine is migrating' };
      if (ac.signal.aborted) return { kind: 'skipped', why: `interrupted: ${(ac.signal.reason as Error)?.message ?? 'aborted'}` };
      throw err;
    }
    // Re-check after hashing: lease unbroken, same inode state, same record.
    if (getLease(fd, absPath) !== 'read' || !sameStat(fstatSync(fd, { bigint: true }), e)) return { kind: 'skipped', why: 'changed while hashed' };
    const rec = decodeRecord(fgetxattr(fd, XATTR_STATE, absPath));
    if (!sameRecord(rec, e.record)) return { kind: 'skipped', why: 'record changed while hashed' };
    if (hashed.sha256 === e.record.copy?.sha256 && hashed.bytes === e.record.copy.size) return { kind: 'match', bytes: hashed.bytes, ctimeNs: e.ctimeNs };
    if (!dryRun) fsetxattr(fd, XATTR_STATE, encodeRecord({ ...rec!, state: 'dirty' }), absPath);
    return { kind: 'mismatch', bytes: hashed.bytes, sha256: hashed.sha256, marked: !dryRun };
  } finally {
    signal?.removeEventListener('abort', onOuter);
    stop();
    if (leased) {
      try {
        setLease(fd, 'unlock', absPath);
      } catch {
        // closing the fd drops the lease anyway
      }
    }
    await closeAsync(fd);
  }
}
