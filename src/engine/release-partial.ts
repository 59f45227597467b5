// Re-releasing a partially recalled file (state 'partial': its copy is valid, some chunks
// are local again). Such a file is marked, so any fd we open has fanotify HSM mode and a
// punch through it raises FAN_PRE_ACCESS, which this very process would have to answer
// under its own lease (deadlock, measured). Unmarking first is no way out: an opener
// arriving unmarked reads the holes as zeros later.
//
// The way through (measured on 6.18, ext4 and xfs; docs/engine.md): the kernel opens
// fanotify event fds with FMODE_NONOTIFY (O_RDWR in our group), and the mark includes
// FAN_OPEN_PERM. So we open the file ourselves (async: the recall service on this event
// loop answers it), the service dups the event fd of that open for us and allows it, we
// close our HSM-mode fd and work on the no-notify one:
//   capture+open -> close own fd -> no fetch under way -> F_SETLEASE F_WRLCK (EAGAIN:
//   busy) -> record still partial, same tier, fstat size/mtime == copy -> every chunk the
//   bitmap or the service's memory calls resident (chunks/resident-union.ts) hashed == the copy's
//   chunk sum (verify-resident.ts; a mismatch: the rest is recalled if the copy has sums
//   and the space is free, the file recorded dirty, nothing punched) -> tier.stat size -> lease still
//   ours, file unchanged -> catalog 'released' -> record 'released' -> drop
//   trusted.tier.resident -> service forgets the inode -> punch -> futimens -> F_UNLCK.
// The mark stays throughout: an opener during the lease raises an event whose event fd
// breaks our lease (the SIGIO listener unlocks at once, we give up before punching, it
// reads normally); after the punch the record says released, so every read is recalled.
// Any fetch of this inode holds an O_RDWR event fd, so a taken lease also proves that no
// fill can write into the file while we punch it.
import { closeSync, constants, fdatasync as fdatasyncCb, fstatSync, lstatSync, open, statfsSync, statSync, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import { fgetxattr, fileHandleOfFd, fremovexattr, fsetxattr, futimens, nsToTimespec } from '../kernel/libc.js';
import { getLease, holdLease, type LeaseGuard } from '../kernel/lease.js';
import { punchWhole } from '../kernel/punch.js';
import type { Tier } from '../tiers/tier.js';
import { DEFAULT_TUNING } from '../dsl/ast.js';
import type { ResidentMap } from '../chunks/resident.js';
import { chunkCount, decodeRecord, storedSize, encodeRecord, XATTR_RESIDENT, XATTR_STATE, type StateRecord } from '../record/state-record.js';
import { rowFromRecord } from './catalog.js';
import type { ExecDeps, NoNotifyAccess, Outcome, OutcomeStatus } from './migrate-types.js';
import { lockInode } from './open-unmarked.js';
import type { Pinned } from '../kernel/beneath.js';
import { faultPoint } from './fault.js';
import { withMarkedIo } from './marked-io.js';
import type { CopyIndex } from '../chunks/extent-map.js';
import { copySums, fillMissing, firstStaleChunk, missingBytes, type CopySource } from './verify-resident.js';
import { residentToVerify } from '../chunks/resident-union.js';
import { lostChunks } from '../chunks/fs-resident.js';

const OWN_OPEN_FLAGS = constants.O_RDONLY | constants.O_NOATIME | constants.O_NOFOLLOW;
const PUNCH_ALIGN = 64 * 1024; // as in migrate-file.ts: the unaligned tail block is freed too
const openAsync = promisify(open);
const fdatasync = promisify(fdatasyncCb);

export class Busy extends Error {}

type Copy = NonNullable<StateRecord['copy']>;

export function unchanged(copy: Copy, st: { size: bigint; mtimeNs: bigint }): boolean {
  return BigInt(copy.size) === st.size && copy.mtimeNs === st.mtimeNs.toString();
}

/**
 * Release of the pinned inode, whose record says 'partial' (execute.ts looked), under this
 * process's per-inode lock: no whole-file migration opens it meanwhile (open-unmarked.ts).
 */
export async function releasePartialLocked(pin: Pinned, absPath: string, tier: Tier, deps: ExecDeps): Promise<Outcome> {
  const unlockInode = lockInode(`${pin.st.dev}:${pin.st.ino}`);
  if (!unlockInode) return { status: 'busy', uploaded: 0, freed: 0, message: 'busy: another action is migrating it' };
  try {
    return await releasePartial(absPath, tier, deps, pin.proc);
  } finally {
    unlockInode();
  }
}

/**
 * Release of a file whose record says 'partial' (caller checked). `at` opens it: the
 * caller's `/proc/self/fd/N` of the inode it resolved and checked (kernel/beneath.ts).
 */
export async function releasePartial(absPath: string, tier: Tier, deps: ExecDeps, at = absPath): Promise<Outcome> {
  const none = (status: OutcomeStatus, message: string): Outcome => ({ status, uploaded: 0, freed: 0, message });
  const nn = deps.marker?.noNotify;
  if (!nn) return none('skipped', 'partially recalled: the copy is already in the tier (no recall service to re-release it)');

  const fd = await noNotifyFd(at, nn).catch((e: Error) => e);
  if (fd instanceof Error) return fd instanceof Busy ? none('busy', fd.message) : none('failed', `release ${absPath}: ${fd.message}`);

  let lease: LeaseGuard | null = null;
  const ac = new AbortController();
  try {
    const st0 = fstatSync(fd, { bigint: true });
    const id = `${st0.dev}:${st0.ino}`;
    // A fetch under way holds an event fd (the lease would fail anyway) and may write.
    if (nn.fetching(id)) return none('busy', 'busy: being recalled');
    try {
      // Given up inside the SIGIO listener when an opener comes (kernel/lease.ts).
      lease = holdLease(fd, absPath, () => ac.abort(new Error('lease broken')));
      faultPoint('partial-after-lease');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return none('busy', 'busy: open or mapped by another process');
      throw e;
    }
    const size = Number(st0.size);
    const rec = decodeRecord(fgetxattr(fd, XATTR_STATE, absPath));
    if (rec?.state !== 'partial' || !rec.copy) return none('skipped', `no longer partially recalled (${rec?.state ?? 'no record'}): next run`);
    if (rec.copy.tier !== tier.name) return none('skipped', `partially recalled: its copy is on tier ${rec.copy.tier}`);
    // The copy is valid for every byte only while size AND mtime are the copy's. deriveState
    // calls a touched partial file still 'partial' (its data is in the tier); a written one
    // too until the recall service's next event: neither may lose its local bytes.
    if (!unchanged(rec.copy, st0)) return none('skipped', 'partially recalled and modified since (mtime differs from its copy): the recall service completes it first');
    if (rec.pinned) return none('skipped', 'pinned');
    const copy = rec.copy;

    // Same size and mtime do not prove the resident chunks are the copy's: a write over a
    // resident chunk needs no fetch, and mtime can be put back. Hash them (local reads).
    // Under the lease no fill runs, so the service's map is settled: the union of it and the
    // bitmap is what may differ from the copy (chunks/resident-union.ts).
    const view = residentToVerify(chunkCount(copy.size, copy.chunk), fgetxattr(fd, XATTR_RESIDENT, absPath), nn.cachedResident(id));
    if (!view.ok) return none('skipped', view.why);
    const resident = view.map;
    if (view.memoryOnly.length > 0) {
      deps.log.warn('resident chunks the bitmap lacks (storing it failed): verified too', { path: absPath, op: 'release', tier: copy.tier, key: copy.key, chunks: view.memoryOnly.join(',') });
    }
    const src: CopySource = { tier, copy, timeoutMs: (tier.tuning ?? DEFAULT_TUNING).timeoutMs, signal: ac.signal };
    const sums = await copySums(src);
    // A bit whose bytes a crash took (fills are not synced one by one): hashing the hole
    // would call the file written. The recall service drops such bits and fetches the
    // chunks again at their next read (chunks/fs-resident.ts); until then, leave the file alone.
    const lost = lostChunks(fd, copy, sums?.map ?? null, resident, Number(st0.size));
    if (lost.length > 0) return none('skipped', `partially recalled; ${lost.length} resident chunk(s) lost by a crash are fetched again at their next read: next run`);
    const stale = await firstStaleChunk(fd, resident, src, sums);
    if (stale !== null) {
      const mayWrite = () => !ac.signal.aborted && !lease!.broken && getLease(fd, absPath) === 'write';
      return await completeAsDirty(fd, absPath, rec, st0, resident, src, sums, stale, mayWrite, deps);
    }

    const info = await tier.stat(copy.key, ac.signal);
    if (!info || info.size !== storedSize(copy)) throw new Error(`tier ${tier.name}: object ${JSON.stringify(copy.key)} is missing or short; not releasing`);

    // Last look before anything destructive.
    if (lease.broken || getLease(fd, absPath) !== 'write') return none('busy', 'lease broken: another process opened the file');
    const st1 = fstatSync(fd, { bigint: true });
    if (st1.size !== st0.size || st1.mtimeNs !== st0.mtimeNs || st1.ino !== st0.ino) return none('busy', 'file changed: next run');

    const next: StateRecord = { ...rec, state: 'released' };
    const row = rowFromRecord({ dev: Number(st0.dev), ino: Number(st0.ino), absPath, size }, next, 'released', Date.now(), fileHandleOfFd(fd))!;
    // Catalog, then record, then punch: the order migrate-file.ts keeps (a crash leaves a
    // released record over still-local bytes, which reads recall identically).
    deps.catalog?.upsert(row);
    fsetxattr(fd, XATTR_STATE, encodeRecord(next), absPath);
    fremovexattr(fd, XATTR_RESIDENT, absPath);
    faultPoint('partial-after-record');
    // The handler's cached resident map would answer reads over the holes with ALLOW
    // (zeros). No event can refill it before F_UNLCK: its event fd would break the lease.
    nn.forget(id);
    const freed = Number(st0.blocks) * 512;
    punchWhole(fd, size, PUNCH_ALIGN, absPath);
    faultPoint('partial-after-punch');
    futimens(fd, nsToTimespec(st0.atimeNs), nsToTimespec(st0.mtimeNs), absPath);
    return { status: 'done', uploaded: 0, freed, key: copy.key };
  } catch (e) {
    if (lease?.broken) return none('busy', 'lease broken: another process opened the file');
    return none('failed', `release ${absPath}: ${(e as Error).message}`);
  } finally {
    if (lease) {
      try {
        lease.release();
      } catch (e) {
        deps.log.warn('unlock failed', { path: absPath, op: 'F_UNLCK', err: e });
      }
    }
    closeSync(fd);
  }
}

/**
 * A partial file whose resident chunk `stale` differs from the copy (written in place,
 * mtime put back): never punched. The missing chunks are written from the copy (they
 * were never written: a write into one is preceded by its fill), then the record says
 * 'dirty' (copy kept, as for any rewrite of an archived file: state-record.ts), the
 * bitmap goes and the mark with it. Nothing is left to recall, so no old byte can come
 * back over the new ones, and the next run uploads the file anew. Cut short (lease
 * broken, tier down, ENOSPC, kill), the file stays 'partial' as it was, with its user's
 * mtime (put back after each chunk): chunks written without their bit hold the copy's
 * bytes, which a later fill writes again, identically. Not attempted (nothing written)
 * for a copy without sums or when the free space does not cover the missing chunks.
 */
async function completeAsDirty(
  fd: number,
  absPath: string,
  rec: StateRecord,
  st0: BigIntStats,
  resident: ResidentMap,
  src: CopySource,
  sums: CopyIndex | null,
  stale: number,
  mayWrite: () => boolean,
  deps: ExecDeps,
): Promise<Outcome> {
  const fields = { path: absPath, op: 'release', tier: src.copy.tier, key: src.copy.key, chunk: stale };
  const differs = `written in place since its partial recall (chunk ${stale} differs from the copy on tier ${src.copy.tier}, key ${src.copy.key})`;
  // Unverifiable chunks are never written: the next recall fetches them as it always did.
  if (!sums) {
    deps.log.warn('partially recalled file differs from its copy, which has no chunk sums: left partial', fields);
    return { status: 'skipped', uploaded: 0, freed: 0, message: `${differs}: not released; its copy has no chunk sums (archived by an older version), so the missing chunks are not filled here: left partial, reads recall them` };
  }
  // Give up before the first write rather than run into ENOSPC half-way. f_bavail: the
  // root reserve stays the admin's. Margin 1/64 for the filesystem's own metadata.
  const fsStat = statfsSync(`/proc/self/fd/${fd}`, { bigint: true }); // this inode's filesystem, whatever the path names now
  const block = Number(fsStat.bsize);
  const missing = missingBytes(resident, src.copy, block, sums);
  const free = Number(fsStat.bavail) * block;
  if (missing + Math.ceil(missing / 64) > free) {
    deps.log.warn('partially recalled file differs from its copy; not enough free space to recall the rest: left partial', { ...fields, missing, free });
    return { status: 'busy', uploaded: 0, freed: 0, message: `${differs}: not enough free space to recall the rest (${missing} bytes missing, ${free} free): left partial, nothing written; next run` };
  }
  deps.log.warn('partially recalled file differs from its copy (written in place, mtime put back): recalling the rest, it becomes dirty', fields);
  const fetched = await fillMissing(fd, resident, src, sums, mayWrite, st0.mtimeNs);
  futimens(fd, nsToTimespec(st0.atimeNs), nsToTimespec(st0.mtimeNs), absPath);
  await fdatasync(fd);
  if (!mayWrite()) throw new Error('lease broken: another process opened the file');
  const next: StateRecord = { ...rec, state: 'dirty' };
  // Record first: a crash before the unmark leaves a marked dirty file, which the handler
  // unmarks at its first event (its data is all local).
  fsetxattr(fd, XATTR_STATE, encodeRecord(next), absPath);
  fremovexattr(fd, XATTR_RESIDENT, absPath);
  await deps.marker!.unmark(fd);
  try {
    deps.catalog?.upsert(rowFromRecord({ dev: Number(st0.dev), ino: Number(st0.ino), absPath, size: Number(st0.size) }, next, 'dirty', Date.now(), fileHandleOfFd(fd))!);
  } catch (e) {
    deps.log.warn('catalog not updated', { ...fields, err: e });
  }
  const message = `${differs}: not released; recalled whole (${fetched} bytes) and recorded dirty, the next run archives it anew`;
  return { status: 'skipped', uploaded: 0, freed: 0, message };
}

/**
 * Opens the file (async: the answer comes from this event loop) while the recall service
 * captures that open's event fd; returns the no-notify dup, our own HSM-mode fd closed.
 */
export async function noNotifyFd(at: string, nn: NoNotifyAccess): Promise<number> {
  const proc = at.startsWith('/proc/self/fd/'); // the caller's checked inode: the magic link is followed
  const st = proc ? statSync(at, { bigint: true }) : lstatSync(at, { bigint: true });
  if (!st.isFile()) throw new Error('not a regular file');
  const cap = nn.captureOwnOpen(`${st.dev}:${st.ino}`);
  if (!cap) throw new Busy('busy: another action is releasing it');
  let own: number;
  try {
    own = await withMarkedIo(() => openAsync(at, proc ? OWN_OPEN_FLAGS & ~constants.O_NOFOLLOW : OWN_OPEN_FLAGS)); // waits for our own service
  } catch (e) {
    if (cap.fd !== null) closeSync(cap.fd);
    const err = e as NodeJS.ErrnoException;
    throw new Error(`open: ${err.code === 'ELOOP' ? 'is a symlink' : err.message}`);
  } finally {
    cap.cancel();
  }
  closeSync(own);
  // No open event: the mark lacks FAN_OPEN_PERM (or the path now names another inode).
  if (cap.fd === null) throw new Busy('partially recalled, but no open event to take a no-notify fd from: next run');
  const got = fstatSync(cap.fd, { bigint: true });
  if (got.dev !== st.dev || got.ino !== st.ino) {
    closeSync(cap.fd);
    throw new Busy('file replaced while opening: next run');
  }
  return cap.fd;
}
