// The archive and release protocols for a file whose data is all local (a partial file
// goes through release-partial.ts), as the list of steps docs/architecture.md tells:
//   open -> look -> mark -> lease -> copy + verify (or verify the kept copy) -> last look ->
//   catalog ahead -> record -> punch -> futimens -> complete mark -> catalog -> unlock.
// The two catalog writes join the group commit of the migrations in flight (catalog.ts upsertGrouped).
// Archive takes the same steps without mark, catalog ahead, punch, futimens and complete mark.
// Invariants:
// - Every step works on the inode through the fd openUnmarked gave (opened while the inode
//   had no mark: no pread or punch under the lease can raise a pre-content event, which
//   this very process would have to answer: a deadlock, measured). Under a filesystem mark
//   every fd raises events, so a release works through the event fd of its own open
//   instead (no-notify, noNotifyRelease below). Never a second open while holding the lease
//   (we would block ourselves 45 s).
// - The mark goes on before the lease: an opener blocked by the lease has its fanotify
//   mode fixed at open, and must see the mark or it would read zeros later.
// - Nothing is punched without a verified copy; a dirty or stale file is uploaded again.
// - The catalog lists the file as released before the record says so, and the record says
//   so before the punch: a crash leaves at worst a marked file whose data is still local
//   (reads are recalled, same bytes), never a hole without a record or a row. A failure
//   after the upload leaves an orphan object (gc).
// - SIGIO (an opener is waiting) unlocks at once, in the signal listener, then aborts.
// - A step that ends the file early throws Stop (its outcome) or Abort (busy: lease
//   broken, file changed); the unlock step runs whatever happened.
import { randomUUID } from 'node:crypto';
import { closeSync, constants, fstatSync, type BigIntStats } from 'node:fs';
import { stillMatches, validatorOf } from '../tiers/validator.js';
import { upload } from './upload.js';
import { faultPoint } from './fault.js';
import { fcntl, fgetxattr, fileHandleOfFd, fremovexattr, fsetxattr, futimens, nsToTimespec } from '../kernel/libc.js';
import { getLease, holdLease, type LeaseGuard } from '../kernel/lease.js';
import { punchWhole } from '../kernel/punch.js';
import type { Tier } from '../tiers/tier.js';
import { decodeRecord, encodeRecord, storedSize, XATTR_RESIDENT, XATTR_STATE, type StateRecord } from '../record/state-record.js';
import { DEFAULT_TUNING } from '../dsl/ast.js';
import { deriveState } from './facts.js';
import { rowFromRecord, type CatalogRow } from './catalog.js';
import { copyStillValid, recordedCtime } from './verify-copy.js';
import { openUnmarked } from './open-unmarked.js';
import { none, Stop, type ExecDeps, type Marker, type MigrateMode, type Outcome } from './migrate-types.js';
import { Busy, noNotifyFd } from './release-partial.js';
import type { Pinned } from '../kernel/beneath.js';

export const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOATIME | constants.O_NOFOLLOW;
// fallocate(PUNCH_HOLE) needs a writable fd (EBADF on O_RDONLY, measured), and the punch
// must go through the pre-mark fd: release opens read-write. Nothing is written through it
// but the hole.
const RELEASE_FLAGS = constants.O_RDWR | constants.O_NOATIME | constants.O_NOFOLLOW;
const PUNCH_ALIGN = 64 * 1024; // a multiple of every block size we meet
const F_GETFL = 3;
const F_SETFL = 4;

type Copy = NonNullable<StateRecord['copy']>;

/** A fresh object key, `xx/<uuid>` (xx: the uuid's first two hex digits). */
export const newKey = (): string => {
  const u = randomUUID();
  return `${u.slice(0, 2)}/${u}`;
};

/**
 * Under a filesystem mark, the fd a release works through: the event fd of our own open
 * (no-notify: our reads and the punch raise nothing), taken after any ignore mark came off
 * (else that open raises no event). With an ignore mark as the engine's silencer instead, a
 * worker killed after the punch left a released file whose reads raised nothing: zeros
 * until the next worker flushed it (test/daemon/fs-marks-kill.test.ts).
 */
async function noNotifyRelease(pin: Pinned, hsmFd: number, marker: Marker, absPath: string): Promise<number | Outcome> {
  if (!marker.noNotify || !marker.markPreLease) return none('failed', `release ${absPath}: under a filesystem mark, but the recall service gives no no-notify fd`);
  await marker.markPreLease(hsmFd); // under a filesystem mark: the ignore mark off
  let fd: number;
  try {
    fd = await noNotifyFd(pin.proc, marker.noNotify);
  } catch (e) {
    return e instanceof Busy ? none('busy', e.message) : none('failed', `release ${absPath}: ${(e as Error).message}`);
  }
  try {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | constants.O_NOATIME); // our reads leave atime alone, as the usual fd's
  } catch {
    // atime moves on a read; restoreTimes puts it back after the punch
  }
  return fd;
}

/** The lease was broken or the file changed under it: busy, next run. */
class Abort extends Error {}

/**
 * Archive (copy, keep data) or release (copy if needed, then free the blocks) of the
 * pinned inode, whose record said neither released nor partial (execute.ts looked).
 */
export async function migrateFile(pin: Pinned, absPath: string, tier: Tier, mode: MigrateMode, deps: ExecDeps, wasMarked: boolean): Promise<Outcome> {
  const m = await Migration.open(pin, absPath, tier, mode, deps, wasMarked);
  if (!(m instanceof Migration)) return m;
  try {
    m.look();
    if (mode === 'release') await m.mark();
    await m.lease();
    const copy = await m.copyOrReuse();
    m.lastLook();
    const next = m.nextRecord(copy);
    if (mode === 'release') {
      await m.catalogAhead(next);
      m.lastLook(); // that await let a lease break in: look again, nothing awaits from here to the punch
    }
    m.record(next);
    if (mode === 'release') {
      m.punch();
      m.restoreTimes();
      await m.completeMark();
    }
    await m.catalog(next);
    return { status: 'done', uploaded: m.uploaded, freed: m.freed, key: copy.key };
  } catch (e) {
    return m.outcomeOf(e);
  } finally {
    await m.unlock();
  }
}

/** One file's migration: the fd, what was seen through it, and what each step left for the next. */
class Migration {
  private readonly ac = new AbortController();
  private leaseGuard: LeaseGuard | null = null;
  /** Our mark is on and the record does not say released yet: the unlock step takes it off. */
  private marked = false;
  private st0!: BigIntStats;
  private rec: StateRecord | null = null;
  /** Archived here already: the kept copy may be reused (after verify-copy.ts agrees). */
  private archivedHere = false;
  private reused = false;
  /** The inode's file handle for the catalog rows (one name_to_handle_at for both). */
  private handle: Buffer | null = null;
  uploaded = 0;
  freed = 0;

  private constructor(
    private readonly fd: number,
    private readonly unlockInode: () => void,
    private readonly absPath: string,
    private readonly tier: Tier,
    private readonly mode: MigrateMode,
    private readonly deps: ExecDeps,
  ) {}

  /**
   * Step 1, open: async (a marked file's open raises an event this process may have to
   * answer), and an fd no pre-content event can come from (open-unmarked.ts).
   */
  static async open(pin: Pinned, absPath: string, tier: Tier, mode: MigrateMode, deps: ExecDeps, wasMarked: boolean): Promise<Migration | Outcome> {
    const marker = deps.marker;
    const opened = await openUnmarked(absPath, {
      at: pin.proc,
      flags: mode === 'release' ? RELEASE_FLAGS : OPEN_FLAGS,
      wasMarked,
      ...(marker?.clearMark ? { clearMark: (f: number) => marker.clearMark!(f) } : {}),
    });
    if (!opened.ok) {
      // A running executable cannot be opened for writing: busy, like any other open file.
      if (opened.code === 'ETXTBSY') return none('busy', 'busy: being executed');
      return none(opened.status, opened.status === 'busy' ? opened.message : `${mode} ${absPath}: ${opened.message}`);
    }
    let fd = opened.fd;
    if (mode === 'release' && marker?.underFilesystemMark?.(fd)) {
      const nn = await noNotifyRelease(pin, fd, marker, absPath);
      closeSync(fd);
      if (typeof nn !== 'number') {
        opened.unlock();
        return nn;
      }
      fd = nn;
    }
    return new Migration(fd, opened.unlock, absPath, tier, mode, deps);
  }

  /** Step 2, look: the file as opened, and whether there is anything to do. */
  look(): void {
    const { fd, absPath, mode, deps } = this;
    this.st0 = fstatSync(fd, { bigint: true });
    const st0 = this.st0;
    if (!st0.isFile()) throw new Stop(none('skipped', `${mode} ${absPath}: not a regular file`));
    const rec = (this.rec = decodeRecord(fgetxattr(fd, XATTR_STATE, absPath)));
    const state = deriveState(rec, { size: Number(st0.size), mtimeNs: st0.mtimeNs.toString() });
    if (state === 'released') throw new Stop(none('skipped', 'already released'));
    // A partial file is already marked, so this fd was opened after the mark: punching
    // through it raises a pre-content event this process would have to answer while it
    // holds the lease (measured: a deadlock). It turned partial after our peek: next run.
    if (state === 'partial') throw new Stop(none('skipped', 'partially recalled meanwhile: next run'));
    // Archived here already: trusted without a lease only while ctime is the one the engine
    // recorded (nobody can set ctime back); else hashed under the lease (verify-copy.ts).
    this.archivedHere = state === 'archived' && rec?.copy?.tier === this.tier.name;
    if (mode === 'archive' && this.archivedHere && recordedCtime(deps.catalog, Number(st0.dev), Number(st0.ino)) === st0.ctimeNs.toString()) {
      throw new Stop(none('skipped', 'already archived'));
    }
    if (mode === 'release' && rec?.pinned) throw new Stop(none('skipped', 'pinned'));
  }

  /** Step 3, mark (release): before the lease, so an opener the lease blocks sees the mark. */
  async mark(): Promise<void> {
    const marker = this.deps.marker!;
    if (marker.markPreLease) await marker.markPreLease(this.fd);
    else await marker.markReleased(this.fd);
    this.marked = true;
    faultPoint('after-mark');
  }

  /**
   * Step 4, lease: F_SETLEASE F_WRLCK; a break is given up inside the SIGIO listener, before
   * the abort (the opener never waits for our upload to settle). Our own recall service may
   * still hold the inode's event fd for work after its answer (completion, read-ahead): that
   * is no other user, so wait for it once and try again before calling the file busy.
   */
  async lease(): Promise<void> {
    try {
      this.takeLease();
    } catch (e) {
      const nn = this.deps.marker?.noNotify;
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || !nn?.settled) throw this.leaseError(e);
      const st = fstatSync(this.fd, { bigint: true });
      await nn.settled(`${st.dev}:${st.ino}`); // a method of the recall service: called on it
      try {
        this.takeLease();
      } catch (e2) {
        throw this.leaseError(e2);
      }
    }
  }

  private takeLease(): void {
    this.leaseGuard = holdLease(this.fd, this.absPath, () => this.ac.abort(new Abort('lease broken: another process opened the file')));
    // Under a filesystem mark: an ignore mark the handler added since our open comes off,
    // before anything is punched (recall/marks.ts); nobody can add one under the lease.
    if (this.mode === 'release') this.deps.marker?.leased?.(this.fd);
    faultPoint('after-lease');
  }

  private leaseError(e: unknown): unknown {
    return (e as NodeJS.ErrnoException).code === 'EAGAIN' ? new Stop(none('busy', 'busy: open or mapped by another process')) : e;
  }

  /**
   * Steps 5-6, copy and verify: a valid copy on this tier (archived, unchanged since) needs
   * no upload, only a look at the object. Size and mtime can be put back after a rewrite:
   * unless ctime says the inode is as we left it, the file is hashed under the lease first
   * (verify-copy.ts); a stale copy is uploaded anew, and upload.ts verifies what it stored.
   */
  async copyOrReuse(): Promise<Copy> {
    const kept = this.archivedHere ? this.rec!.copy! : null;
    const verified = kept ? await copyStillValid(this.fd, kept, this.absPath, this.mode, this.deps, this.ac.signal) : null;
    if (!kept || !verified?.valid) return this.upload();
    if (this.mode === 'archive') this.keepVerifiedCtime(verified.ctimeNs);
    await this.verifyKept(kept);
    this.reused = true;
    return kept;
  }

  private async upload(): Promise<Copy> {
    const { fd, tier, absPath, st0 } = this;
    const size = Number(st0.size);
    const key = newKey();
    const { sha256, sumsSha, stored, sparse, chunk, tree } = await upload(fd, tier, key, size, tier.tuning?.chunk ?? DEFAULT_TUNING.chunk, st0, absPath, this.ac.signal);
    this.uploaded = stored;
    faultPoint('after-verify');
    return { tier: tier.name, key, size, mtimeNs: st0.mtimeNs.toString(), sha256, archivedAt: Date.now(), chunk, sumsSha, ...(sparse ? { sparse } : {}), ...(tree ? { tree } : {}) };
  }

  /**
   * Archive of a file whose copy is current: nothing to upload. Record the ctime its bytes
   * were verified at, so the next run skips the hash, but only if nothing could have
   * touched the file since: a recorded ctime is what lets a later release trust the copy
   * without reading. Ends the migration (skipped).
   */
  private keepVerifiedCtime(ctimeNs: string): never {
    const { fd, absPath, st0, deps } = this;
    if (this.ac.signal.aborted || getLease(fd, absPath) !== 'write') throw new Abort('lease broken: another process opened the file');
    if (fstatSync(fd, { bigint: true }).ctimeNs.toString() !== ctimeNs) throw new Abort('file changed while hashed');
    try {
      deps.catalog?.setCtime(Number(st0.dev), Number(st0.ino), ctimeNs);
    } catch (e) {
      deps.log.warn('catalog not updated', { path: absPath, op: this.mode, err: e });
    }
    throw new Stop(none('skipped', 'already archived (content hashed: the copy is current)'));
  }

  /** The kept copy's object is still there, whole, and (imported) still the version recorded. */
  private async verifyKept(copy: Copy): Promise<void> {
    const tierName = this.tier.name;
    const info = await this.tier.stat(copy.key, this.ac.signal);
    if (!info || info.size !== storedSize(copy)) throw new Error(`tier ${tierName}: object ${JSON.stringify(copy.key)} is missing or short; not releasing`);
    // An imported object replaced on the tier: the local bytes are the only copy of this
    // version; keep them (the next `tier import` reports the file).
    if (copy.foreign !== undefined && !stillMatches(copy.foreign, copy.size, info))
      throw new Error(`tier ${tierName}: imported object ${JSON.stringify(copy.key)} changed on the tier (was ${copy.foreign}, now ${validatorOf(info) ?? 'unknown'}); not releasing`);
  }

  /** Step 7, last look before anything destructive: lease unbroken, file unchanged. */
  lastLook(): void {
    if (this.ac.signal.aborted || getLease(this.fd, this.absPath) !== 'write') throw new Abort('lease broken: another process opened the file');
    const st = fstatSync(this.fd, { bigint: true });
    if (st.size !== this.st0.size || st.mtimeNs !== this.st0.mtimeNs || st.ino !== this.st0.ino) throw new Abort('file changed during the copy');
  }

  /** The record the next steps write (and the file handle its catalog rows carry). */
  nextRecord(copy: Copy): StateRecord {
    const rec = this.rec;
    this.handle = this.deps.catalog ? fileHandleOfFd(this.fd) : null;
    return { v: 1, state: this.mode === 'release' ? 'released' : 'archived', pinned: rec?.pinned ?? false, copy, gen: (rec?.gen ?? 0) + (this.reused ? 0 : 1) };
  }

  private row(next: StateRecord): CatalogRow {
    const { st0, absPath } = this;
    return rowFromRecord({ dev: Number(st0.dev), ino: Number(st0.ino), absPath, size: Number(st0.size) }, next, next.state, Date.now(), this.handle)!;
  }

  /**
   * Step 8, catalog ahead (release): the catalog is what the next daemon marks at start-up:
   * it must list the file as released before the record says so and the blocks go, or a
   * daemon killed in between leaves a hole nobody marks (zeros; kill-migrate.test.ts). A
   * row ahead of its record is harmless: start-up marking checks the record first.
   */
  async catalogAhead(next: StateRecord): Promise<void> {
    if (this.deps.catalog) await this.deps.catalog.upsertGrouped(this.row(next)); // committed before we go on (group commit)
  }

  /** Step 9, record: the trusted.tier.state xattr, the truth about the file. */
  record(next: StateRecord): void {
    fsetxattr(this.fd, XATTR_STATE, encodeRecord(next), this.absPath);
    faultPoint('after-xattr');
    // From here a released record says so: the mark stays whatever happens next, so after
    // a failed punch readers get the tier's bytes, never zeros.
    if (next.state === 'released') this.marked = false;
  }

  /** Step 10, punch: the whole file, the hole rounded up past EOF (an unaligned tail block is only zeroed, not freed; KEEP_SIZE keeps the size and frees any preallocation beyond EOF). */
  punch(): void {
    // A partial file's resident bitmap would claim chunks that are about to be holes.
    fremovexattr(this.fd, XATTR_RESIDENT, this.absPath);
    this.freed = Number(this.st0.blocks) * 512;
    punchWhole(this.fd, Number(this.st0.size), PUNCH_ALIGN, this.absPath);
    faultPoint('after-punch');
  }

  /** Step 11, futimens: punching moved mtime; both times go back exactly (age rules must not see a change). */
  restoreTimes(): void {
    futimens(this.fd, nsToTimespec(this.st0.atimeNs), nsToTimespec(this.st0.mtimeNs), this.absPath);
    faultPoint('after-futimens');
  }

  /** Step 12, complete mark: the open events a two-phase marker left out before the lease (marker.ts). */
  async completeMark(): Promise<void> {
    const marker = this.deps.marker!;
    if (marker.markPreLease) await marker.markReleased(this.fd);
  }

  /**
   * Step 13, catalog: the row, and the ctime after our last change (xattr; release:
   * futimens), still under the lease: while the file keeps it, the copy is known good
   * without a hash (verify-copy.ts). The record is the truth and is written: a failure
   * here only warns, the index catches up on a rebuild.
   */
  async catalog(next: StateRecord): Promise<void> {
    const { deps } = this;
    try {
      if (deps.catalog) await deps.catalog.upsertGrouped(this.row(next), fstatSync(this.fd, { bigint: true }).ctimeNs.toString()); // row and ctime: one commit
    } catch (e) {
      deps.log.warn('catalog not updated', { path: this.absPath, op: this.mode, err: e });
    }
    faultPoint('after-catalog');
  }

  /** What a thrown step means: its own outcome (Stop), busy (lease broken, file changed), or a failure with the path. */
  outcomeOf(e: unknown): Outcome {
    if (e instanceof Stop) return e.outcome;
    const aborted = this.ac.signal.aborted || e instanceof Abort;
    const reason = this.ac.signal.reason;
    const msg = e instanceof Abort ? e.message : reason instanceof Abort ? reason.message : (e as Error).message;
    return none(aborted ? 'busy' : 'failed', aborted ? msg : `${this.mode} ${this.absPath}: ${msg}`);
  }

  /** Step 14, unlock: F_UNLCK, our mark off unless the record says released, close, the inode lock freed. */
  async unlock(): Promise<void> {
    const { deps, absPath } = this;
    if (this.leaseGuard) {
      faultPoint('before-unlock');
      try {
        this.leaseGuard.release();
      } catch (e) {
        deps.log.warn('unlock failed', { path: absPath, op: 'F_UNLCK', err: e });
      }
    }
    if (this.marked) {
      try {
        await deps.marker!.unmark(this.fd);
      } catch (e) {
        deps.log.warn('unmark failed', { path: absPath, op: 'unmark', err: e });
      }
    }
    closeSync(this.fd);
    this.unlockInode();
  }
}
