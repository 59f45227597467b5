// The small actions: pin/unpin (a flag in the record) and recall (read the whole file
// through a normal fd so the recall service fills it), and the dispatcher that runs one
// planned action. Every path is resolved beneath its fileset and its inode checked
// (kernel/beneath.ts) before any open; opens go through the checked inode's magic link.
import { closeSync, constants, fstatSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { fgetxattr, fremovexattr, fsetxattr, getxattr } from '../kernel/libc.js';
import { BeneathError, pinInFilesets, type Pinned } from '../kernel/beneath.js';
import { decodeRecord, encodeRecord, XATTR_STATE, type StateRecord } from '../record/state-record.js';
import { deriveState } from './facts.js';
import { rowFromRecord } from './catalog.js';
import { migrate, NO_RECALL_SERVICE, openAsync, OPEN_FLAGS, type ExecDeps, type Outcome, type OutcomeStatus, type ScannedTarget } from './execute.js';
import type { PlannedAction } from './plan.js';
import { withMarkedIo } from './marked-io.js';

const none = (status: OutcomeStatus, message: string): Outcome => ({ status, uploaded: 0, freed: 0, message });

/** Resolves absPath beneath its fileset (kernel/beneath.ts); a refusal is the outcome. */
function pinFor(op: string, absPath: string, deps: Pick<ExecDeps, 'roots'>, target?: ScannedTarget): Pinned | Outcome {
  try {
    return pinInFilesets(absPath, target ? [target.root] : deps.roots, target);
  } catch (e) {
    if (e instanceof BeneathError && e.code === 'REPLACED') return none('busy', `${e.message}: next run`);
    return none('failed', `${op} ${e instanceof BeneathError ? e.message : `${absPath}: ${(e as Error).message}`}`);
  }
}
const inodeKey = (proc: string) => {
  const st = statSync(proc, { bigint: true });
  return `${st.dev}:${st.ino}`;
};
const isPinned = (x: Pinned | Outcome): x is Pinned => 'proc' in x;
/** Opening the checked inode through its magic link: O_NOFOLLOW would refuse the link itself. */
const VIA_PROC = OPEN_FLAGS & ~constants.O_NOFOLLOW;

/** Sets or clears the pinned flag. A resident, unpinned file ends with no record at all. */
export async function setPinned(absPath: string, pinned: boolean, deps: Pick<ExecDeps, 'catalog' | 'roots'>, target?: ScannedTarget): Promise<Outcome> {
  const op = pinned ? 'pin' : 'unpin';
  const pin = pinFor(op, absPath, deps, target);
  if (!isPinned(pin)) return pin;
  let fd: number;
  try {
    fd = await withMarkedIo(() => openAsync(pin.proc, VIA_PROC)); // a released file's open (or any, under a filesystem mark) waits for our handler
  } catch (e) {
    return none('failed', `${op} ${absPath}: open: ${(e as Error).message}`);
  } finally {
    pin.close();
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) return none('failed', `${op} ${absPath}: not a regular file`);
    const rec = decodeRecord(fgetxattr(fd, XATTR_STATE, absPath));
    if ((rec?.pinned ?? false) === pinned) return none('skipped', pinned ? 'already pinned' : 'not pinned');
    const next: StateRecord = rec ? { ...rec, pinned } : { v: 1, state: 'resident', pinned, gen: 0 };
    const size = Number(st.size);
    const where = { dev: Number(st.dev), ino: Number(st.ino), absPath, size };
    if (!pinned && next.state === 'resident' && !next.copy) {
      fremovexattr(fd, XATTR_STATE, absPath);
      deps.catalog?.remove(where.dev, where.ino);
    } else {
      fsetxattr(fd, XATTR_STATE, encodeRecord(next), absPath);
      const state = deriveState(next, { size, mtimeNs: st.mtimeNs.toString() });
      deps.catalog?.upsert(rowFromRecord(where, next, state, Date.now())!);
    }
    return { status: 'done', uploaded: 0, freed: 0 };
  } catch (e) {
    return none('failed', `${op} ${absPath}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Brings a released file back by reading it whole: each read raises a pre-content event
 * the recall service answers. Without a recall service the reads would return zeros, so
 * it is refused. Reads are async: the service may run on this very event loop.
 */
export async function recallFile(absPath: string, deps: Pick<ExecDeps, 'marker' | 'roots'>, signal?: AbortSignal, target?: ScannedTarget): Promise<Outcome> {
  const pin = pinFor('recall', absPath, deps, target);
  if (!isPinned(pin)) return pin;
  try {
    let rec: StateRecord | null;
    try {
      rec = decodeRecord(getxattr(pin.proc, XATTR_STATE));
    } catch (e) {
      return none('failed', `recall ${absPath}: ${(e as Error).message}`);
    }
    if (!rec || (rec.state !== 'released' && rec.state !== 'partial')) return none('skipped', `not released (${rec?.state ?? 'resident'})`);
    if (!deps.marker) return none('failed', `recall ${absPath}: ${NO_RECALL_SERVICE}`);
    // Each open/read below holds a threadpool thread until our own service answers: capped.
    const out = await withMarkedIo(() => readWhole(absPath, pin.proc, signal));
    // The service syncs and records a file after the read that completed it was answered:
    // wait for that, so a recall that says done leaves the file recorded whole.
    if (out.status === 'done') await deps.marker.noNotify?.settled?.(inodeKey(pin.proc));
    return out;
  } finally {
    pin.close();
  }
}

async function readWhole(absPath: string, at: string, signal?: AbortSignal): Promise<Outcome> {
  let fh;
  try {
    fh = await open(at, constants.O_RDONLY | constants.O_NOATIME);
  } catch (e) {
    return none('failed', `recall ${absPath}: open: ${(e as Error).message}`);
  }
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    let pos = 0;
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
    }
    return { status: 'done', uploaded: 0, freed: 0, message: `recalled ${pos} bytes` };
  } catch (e) {
    return none('failed', `recall ${absPath}: read: ${(e as Error).message}`);
  } finally {
    await fh.close();
  }
}

/** Runs one planned action; never throws (per-file failures are outcomes). */
export async function runAction(a: PlannedAction, deps: ExecDeps, signal?: AbortSignal): Promise<Outcome> {
  // The inode the scan saw, under the root it was scanned from: nothing else is touched.
  const target: ScannedTarget = { root: a.file.root, dev: a.file.dev, ino: a.file.ino };
  try {
    switch (a.kind) {
      case 'archive':
      case 'release':
        return await migrate(a.file.absPath, a.tier!, a.kind, deps, target);
      case 'pin':
      case 'unpin':
        return await setPinned(a.file.absPath, a.kind === 'pin', deps, target);
      case 'recall':
        return await recallFile(a.file.absPath, deps, signal, target);
    }
  } catch (e) {
    return none('failed', `${a.kind} ${a.file.absPath}: ${(e as Error).message}`);
  }
}
