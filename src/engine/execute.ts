// The archive and release protocols (kernel-facts.md, issue 4). Release must be
// impossible to get wrong under races:
//   openUnmarked (look read-only, let the recall service finish a written released file,
//   clear a stale mark, open again: O_RDONLY|O_NOATIME|O_NOFOLLOW, O_RDWR to release) ->
//   marker.markPreLease(fd) (release only) ->
//   F_SETLEASE F_WRLCK (EAGAIN: busy, unmark, skip) -> copy through that fd to the
//   tier with SHA-256 -> verify (put result, stat size, sha) -> F_GETLEASE still
//   F_WRLCK and fstat unchanged -> write the record -> punch -> catalog ->
//   futimens(atime, mtime) -> F_UNLCK -> close.
// Invariants:
// - The path is resolved once, beneath its fileset root with no symlink and no mount
//   crossed, into an O_PATH fd checked against the scan's inode (kernel/beneath.ts); every
//   open, xattr and mark after that goes through that inode, never through the path.
// - Never open the file again while holding the lease (we would block ourselves 45 s).
// - Never read or punch under the lease through an fd that can raise a pre-content event:
//   the fd comes from openUnmarked (open-unmarked.ts: opened while the inode had no mark).
// - The record saying `released` is written before the punch, so a crash leaves at
//   worst a marked file whose data is still local (reads are recalled, same bytes),
//   never a hole without a record. A failure after upload leaves an orphan object.
// - Nothing is punched without a verified copy; a dirty file is uploaded again first.
// - SIGIO (an opener is waiting) unlocks at once, in the signal listener, then aborts.
import { randomUUID } from 'node:crypto';
import { closeSync, constants, fstatSync, open, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import { stillMatches, validatorOf } from '../tiers/validator.js';
import { upload } from './upload.js';
import { faultPoint } from './fault.js';
import { fgetxattr, fileHandleOfFd, fremovexattr, fsetxattr, futimens, getxattr, nsToTimespec } from '../kernel/libc.js';
import { getLease, holdLease, type LeaseGuard } from '../kernel/lease.js';
import { punchWhole } from '../kernel/punch.js';
import type { Tier } from '../tiers/tier.js';
import type { CachedResident } from '../chunks/resident-union.js';
import type { Logger } from '../log.js';
import { copyChunkFor, decodeRecord, encodeRecord, storedSize, XATTR_RESIDENT, XATTR_STATE, type StateRecord } from './state-record.js';
import { DEFAULT_TUNING } from '../dsl/ast.js';
import { deriveState } from './facts.js';
import { rowFromRecord, type Catalog } from './catalog.js';
import { releasePartial } from './release-partial.js';
import { copyStillValid, recordedCtime } from './verify-copy.js';
import { inodeLocked, lockInode, openUnmarked } from './open-unmarked.js';
import { BeneathError, pinInFilesets, type Expected, type Pinned } from '../kernel/beneath.js';

export const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOATIME | constants.O_NOFOLLOW;
// fallocate(PUNCH_HOLE) needs a writable fd (EBADF on O_RDONLY, measured), and the punch
// must go through the pre-mark fd: release opens read-write. Nothing is written through it
// but the hole.
const RELEASE_FLAGS = constants.O_RDWR | constants.O_NOATIME | constants.O_NOFOLLOW;
export const openAsync = promisify(open);
const PUNCH_ALIGN = 64 * 1024; // a multiple of every block size we meet

/**
 * The recall service's marking (the daemon's RecallService has markReleased/unmark).
 * markPreLease, when given, adds only the pre-content part (FAN_PRE_ACCESS) before the
 * lease, and markReleased completes the mark after the punch, still under the lease.
 * Measured: with FAN_OPEN_PERM on the inode while we hold the lease, an opener's
 * open-time event cannot get its event fd (the open conflicts with the lease) and the
 * opener gets EPERM; with FAN_PRE_ACCESS alone it waits, we abort, and it reads normally.
 */
export interface Marker {
  markReleased(fd: number): void | Promise<void>;
  unmark(fd: number): void | Promise<void>;
  markPreLease?(fd: number): void | Promise<void>;
  /** Removes any mark on the inode (none: no error). Called only on files whose data is all local (open-unmarked.ts). */
  clearMark?(fd: number): void | Promise<void>;
  /** The recall service's no-notify access, to re-release partial files (release-partial.ts). */
  noNotify?: NoNotifyAccess;
}

/** What release-partial.ts needs from the recall service (RecallService has it); ids are dev:ino. */
export interface NoNotifyAccess {
  /** Dups the event fd of this process's next FAN_OPEN_PERM on the inode (`fd` is set before the open returns); null: one is pending. */
  captureOwnOpen(id: string): { fd: number | null; cancel(): void } | null;
  /** Chunk fetches under way for the inode. */
  fetching(id: string): boolean;
  /** Drops the cached per-inode state (its resident map would answer reads over the new holes). */
  forget(id: string): void;
  /** The service's in-memory resident map of the inode (null: not cached); may be ahead of the on-disk bitmap (chunks/resident-union.ts). */
  cachedResident(id: string): CachedResident | null;
}

export interface ExecDeps {
  /**
   * The fileset roots a path given without its root (manual actions) must lie beneath;
   * outside all of them it is refused. Absent (library use): no fileset rule, but no
   * symlink is followed in any component either (kernel/beneath.ts).
   */
  roots?: readonly string[];
  tiers: Map<string, Tier>;
  catalog: Catalog | null;
  marker: Marker | null;
  log: Logger;
}

export type OutcomeStatus = 'done' | 'skipped' | 'busy' | 'failed';

export interface Outcome {
  status: OutcomeStatus;
  /** Bytes uploaded (0 when a valid copy existed). */
  uploaded: number;
  /** Blocks freed, in bytes (release). */
  freed: number;
  key?: string;
  message?: string;
}

export const NO_RECALL_SERVICE = 'no recall service running: start `tier daemon`';

class Abort extends Error {}

/** The record of the pinned inode, read through its O_PATH fd's magic link (no open, no event). */
function peekRecord(pin: Pinned): StateRecord | null {
  try {
    return decodeRecord(getxattr(pin.proc, XATTR_STATE));
  } catch {
    return null;
  }
}

function statSafe(fd: number): BigIntStats | null {
  try {
    return fstatSync(fd, { bigint: true });
  } catch {
    return null;
  }
}

/** What a planned action knows of its file: the root it was scanned under and the inode seen. */
export interface ScannedTarget extends Expected {
  root: string;
}

/** A path refused before anything was opened: replaced since the scan (busy, next run) or outside the rules. */
function refused(mode: string, absPath: string, e: unknown, scanned: boolean): Outcome {
  if (e instanceof BeneathError && e.code === 'REPLACED') return { status: 'busy', uploaded: 0, freed: 0, message: `${e.message}: next run` };
  if (scanned && e instanceof BeneathError && e.code === 'ENOENT') return { status: 'skipped', uploaded: 0, freed: 0, message: 'gone since the scan' };
  if (e instanceof BeneathError && e.code === 'EFTYPE') return { status: 'skipped', uploaded: 0, freed: 0, message: 'not a regular file' };
  return { status: 'failed', uploaded: 0, freed: 0, message: `${mode} ${e instanceof BeneathError ? e.message : `${absPath}: ${(e as Error).message}`}` };
}

export const newKey = (): string => {
  const u = randomUUID();
  return `${u.slice(0, 2)}/${u}`;
};

function sameFile(a: BigIntStats, b: BigIntStats): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino;
}

/**
 * Archive (copy, keep data) or release (copy if needed, then free the blocks). The path is
 * resolved once, beneath its fileset root (`target.root`, else the one of deps.roots
 * holding it), into an O_PATH fd whose inode must be `target`'s (the scan's): every later
 * step works on that inode through it, never on the path again (kernel/beneath.ts).
 */
export async function migrate(absPath: string, tierName: string, mode: 'archive' | 'release', deps: ExecDeps, target?: ScannedTarget): Promise<Outcome> {
  let pin: Pinned;
  try {
    pin = pinInFilesets(absPath, target ? [target.root] : deps.roots, target);
  } catch (e) {
    return refused(mode, absPath, e, target !== undefined);
  }
  try {
    return await migratePinned(pin, absPath, tierName, mode, deps);
  } finally {
    pin.close();
  }
}

async function migratePinned(pin: Pinned, absPath: string, tierName: string, mode: 'archive' | 'release', deps: ExecDeps): Promise<Outcome> {
  const none = (status: OutcomeStatus, message: string): Outcome => ({ status, uploaded: 0, freed: 0, message });
  const tier = deps.tiers.get(tierName);
  if (!tier) return none('failed', `${mode} ${absPath}: unknown tier "${tierName}"`);
  if (mode === 'release' && !deps.marker) return none('failed', `release ${absPath}: ${NO_RECALL_SERVICE}`);

  // Idempotent runs must not even open released files (an open raises an event).
  const pre = peekRecord(pin);
  if (pre?.state === 'released' || pre?.state === 'partial') {
    const st = statSafe(pin.fd);
    const now = st && deriveState(pre, { size: Number(st.size), mtimeNs: st.mtimeNs.toString() });
    if (now === 'released') return none('skipped', 'already released');
    // Already marked: only a no-notify fd may punch it (release-partial.ts).
    if (now === 'partial') {
      if (mode !== 'release') return none('skipped', 'partially recalled: the copy is already in the tier');
      const unlockInode = lockInode(`${pin.st.dev}:${pin.st.ino}`); // no normal migration opens it meanwhile
      if (!unlockInode) return none('busy', 'busy: another action is migrating it');
      try {
        return await releasePartial(absPath, tier, deps, pin.proc);
      } finally {
        unlockInode();
      }
    }
  }
  // Not even opened while another action migrates it (our open would break its lease).
  if (inodeLocked(`${pin.st.dev}:${pin.st.ino}`)) return none('busy', 'busy: another action is migrating it');
  const marker = deps.marker;
  // Async opens (a marked file's open raises an event this process may have to answer),
  // and an fd no pre-content event can come from (open-unmarked.ts).
  const opened = await openUnmarked(absPath, {
    at: pin.proc,
    flags: mode === 'release' ? RELEASE_FLAGS : OPEN_FLAGS,
    wasMarked: pre?.state === 'released' || pre?.state === 'partial',
    ...(marker?.clearMark ? { clearMark: (f: number) => marker.clearMark!(f) } : {}),
  });
  if (!opened.ok) {
    // A running executable cannot be opened for writing: busy, like any other open file.
    if (opened.code === 'ETXTBSY') return none('busy', 'busy: being executed');
    return none(opened.status, opened.status === 'busy' ? opened.message : `${mode} ${absPath}: ${opened.message}`);
  }
  const fd = opened.fd;
  let marked = false;
  let lease: LeaseGuard | null = null;
  const ac = new AbortController();
  try {
    const st0 = fstatSync(fd, { bigint: true });
    if (!st0.isFile()) return none('skipped', `${mode} ${absPath}: not a regular file`);
    const size = Number(st0.size);
    const rec = decodeRecord(fgetxattr(fd, XATTR_STATE, absPath));
    const state = deriveState(rec, { size, mtimeNs: st0.mtimeNs.toString() });
    if (state === 'released') return none('skipped', 'already released');
    // A partial file is already marked, so this fd was opened after the mark: punching
    // through it raises a pre-content event this process would have to answer while it
    // holds the lease (measured: a deadlock). It turned partial after our peek: next run.
    if (state === 'partial') return none('skipped', 'partially recalled meanwhile: next run');
    // Archived here already: trusted without a lease only while ctime is the one the engine
    // recorded (nobody can set ctime back); else hashed under the lease below (verify-copy.ts).
    const archivedHere = state === 'archived' && rec?.copy?.tier === tierName;
    if (mode === 'archive' && archivedHere && recordedCtime(deps.catalog, Number(st0.dev), Number(st0.ino)) === st0.ctimeNs.toString()) {
      return none('skipped', 'already archived');
    }
    if (mode === 'release' && rec?.pinned) return none('skipped', 'pinned');

    // The mark goes on before the lease: an opener blocked by the lease has its
    // fanotify mode fixed at open, and must see the mark or it would read zeros later.
    if (mode === 'release' && marker) {
      if (marker.markPreLease) await marker.markPreLease(fd);
      else await marker.markReleased(fd);
      marked = true;
      faultPoint('after-mark');
    }
    try {
      // A broken lease is given up inside the SIGIO listener, before the abort: the opener
      // never waits for our upload to settle.
      lease = holdLease(fd, absPath, () => ac.abort(new Abort('lease broken: another process opened the file')));
      faultPoint('after-lease');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return none('busy', 'busy: open or mapped by another process');
      throw e;
    }

    // A valid copy on this tier (archived, unchanged since) needs no upload. Size and mtime
    // can be put back after a rewrite: unless ctime says the inode is as we left it, the
    // file is hashed under the lease first (verify-copy.ts); a stale copy is uploaded anew.
    const verified = archivedHere ? await copyStillValid(fd, rec!.copy!, absPath, mode, deps, ac.signal) : null;
    const reuse = verified?.valid === true;
    if (mode === 'archive' && reuse) {
      // Same bytes as the copy: nothing to upload. Record the ctime they were verified at, so
      // the next run skips the hash, but only if nothing could have touched the file since:
      // a recorded ctime is what lets a later release trust the copy without reading.
      if (ac.signal.aborted || getLease(fd, absPath) !== 'write') throw new Abort('lease broken: another process opened the file');
      if (fstatSync(fd, { bigint: true }).ctimeNs.toString() !== verified.ctimeNs) throw new Abort('file changed while hashed');
      try {
        deps.catalog?.setCtime(Number(st0.dev), Number(st0.ino), verified.ctimeNs);
      } catch (e) {
        deps.log.warn('catalog not updated', { path: absPath, op: mode, err: e });
      }
      return none('skipped', 'already archived (content hashed: the copy is current)');
    }
    let copy = reuse ? rec!.copy! : undefined;
    let uploaded = 0;
    if (reuse) {
      const info = await tier.stat(copy!.key, ac.signal);
      if (!info || info.size !== storedSize(copy!)) throw new Error(`tier ${tierName}: object ${JSON.stringify(copy!.key)} is missing or short; not releasing`);
      // An imported object replaced on the tier: the local bytes are the only copy of this
      // version; keep them (the next `tier import` reports the file).
      if (copy!.foreign !== undefined && !stillMatches(copy!.foreign, copy!.size, info))
        throw new Error(`tier ${tierName}: imported object ${JSON.stringify(copy!.key)} changed on the tier (was ${copy!.foreign}, now ${validatorOf(info) ?? 'unknown'}); not releasing`);
    } else {
      const key = newKey();
      const chunk = copyChunkFor(tier.tuning?.chunk ?? DEFAULT_TUNING.chunk, size);
      const { sha256, sumsSha, stored, sparse } = await upload(fd, tier, key, size, chunk, st0, absPath, ac.signal);
      uploaded = stored;
      faultPoint('after-verify');
      copy = { tier: tierName, key, size, mtimeNs: st0.mtimeNs.toString(), sha256, archivedAt: Date.now(), chunk, sumsSha, ...(sparse ? { sparse } : {}) };
    }

    // Last look before anything destructive: lease unbroken, file unchanged.
    if (ac.signal.aborted || getLease(fd, absPath) !== 'write') throw new Abort('lease broken: another process opened the file');
    if (!sameFile(st0, fstatSync(fd, { bigint: true }))) throw new Abort('file changed during the copy');

    const next: StateRecord = {
      v: 1,
      state: mode === 'release' ? 'released' : 'archived',
      pinned: rec?.pinned ?? false,
      copy,
      gen: (rec?.gen ?? 0) + (reuse ? 0 : 1),
    };
    // The catalog is what the next daemon marks at start-up: it must list the file as
    // released before the record says so and the blocks go, or a daemon killed in between
    // leaves a hole nobody marks (zeros; test/reliability/kill-migrate.test.ts). A row
    // ahead of its record is harmless: start-up marking checks the record first.
    const handle = deps.catalog ? fileHandleOfFd(fd) : null; // one name_to_handle_at for both rows
    const row = () => rowFromRecord({ dev: Number(st0.dev), ino: Number(st0.ino), absPath, size }, next, next.state, Date.now(), handle)!;
    if (mode === 'release') deps.catalog?.upsert(row());
    fsetxattr(fd, XATTR_STATE, encodeRecord(next), absPath);
    faultPoint('after-xattr');
    let freed = 0;
    if (mode === 'release') {
      // From here the record says released: the mark stays whatever happens next, so
      // after a failed punch readers get the tier's bytes, never zeros.
      marked = false;
      // A partial file's resident bitmap would claim chunks that are about to be holes.
      fremovexattr(fd, XATTR_RESIDENT, absPath);
      freed = Number(st0.blocks) * 512;
      // Round the hole up past EOF: an unaligned tail block is only zeroed, not freed,
      // and KEEP_SIZE keeps the size (also frees any preallocation beyond EOF).
      punchWhole(fd, size, PUNCH_ALIGN, absPath);
      faultPoint('after-punch');
      // Punching moved mtime; restore both times exactly (age rules must not see a change).
      futimens(fd, nsToTimespec(st0.atimeNs), nsToTimespec(st0.mtimeNs), absPath);
      faultPoint('after-futimens');
      if (marker?.markPreLease) await marker.markReleased(fd);
    }
    try {
      deps.catalog?.upsert(row());
      // ctime after our last change (xattr; release: futimens), still under the lease:
      // while the file keeps it, the copy is known good without a hash (verify-copy.ts).
      deps.catalog?.setCtime(Number(st0.dev), Number(st0.ino), fstatSync(fd, { bigint: true }).ctimeNs.toString());
    } catch (e) {
      // The record is the truth and is written; the index catches up on a rebuild.
      deps.log.warn('catalog not updated', { path: absPath, op: mode, err: e });
    }
    faultPoint('after-catalog');
    return { status: 'done', uploaded, freed, key: copy!.key };
  } catch (e) {
    const msg = e instanceof Abort ? e.message : (ac.signal.reason instanceof Abort ? ac.signal.reason.message : (e as Error).message);
    return none(ac.signal.aborted || e instanceof Abort ? 'busy' : 'failed', ac.signal.aborted || e instanceof Abort ? msg : `${mode} ${absPath}: ${msg}`);
  } finally {
    if (lease) {
      faultPoint('before-unlock');
      try {
        lease.release();
      } catch (e) {
        deps.log.warn('unlock failed', { path: absPath, op: 'F_UNLCK', err: e });
      }
    }
    if (marked) {
      try {
        await marker!.unmark(fd);
      } catch (e) {
        deps.log.warn('unmark failed', { path: absPath, op: 'unmark', err: e });
      }
    }
    closeSync(fd);
    opened.unlock();
  }
}
