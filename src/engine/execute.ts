// Where an archive or release of one path starts: resolve it once, look at its record
// without opening it, and hand it to the protocol for its state:
//   released            -> nothing to do (not even opened: an open raises an event);
//   partial (release)   -> release-partial.ts (already marked: only a no-notify fd may punch it);
//   anything else       -> migrate-file.ts (open, mark, lease, copy, verify, last look,
//                          catalog, record, punch, futimens, catalog, unlock).
// Invariants:
// - The path is resolved once, beneath its fileset root with no symlink and no mount
//   crossed, into an O_PATH fd checked against the scan's inode (kernel/beneath.ts); every
//   open, xattr and mark after that goes through that inode, never through the path.
// - One migration of an inode at a time in this process (open-unmarked.ts lockInode): a
//   second open would break the first one's lease.
import { fstatSync, open, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import { getxattr } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE, type StateRecord } from '../record/state-record.js';
import { deriveState } from './facts.js';
import { releasePartialLocked } from './release-partial.js';
import { migrateFile } from './migrate-file.js';
import { inodeLocked } from './open-unmarked.js';
import { BeneathError, pinInFilesets, type Pinned } from '../kernel/beneath.js';
import { NO_RECALL_SERVICE, none, type ExecDeps, type MigrateMode, type Outcome, type ScannedTarget } from './migrate-types.js';

export { NO_RECALL_SERVICE, type ExecDeps, type Marker, type NoNotifyAccess, type Outcome, type OutcomeStatus, type ScannedTarget } from './migrate-types.js';
export { newKey, OPEN_FLAGS } from './migrate-file.js';
export const openAsync = promisify(open);

/**
 * Archive (copy, keep data) or release (copy if needed, then free the blocks). The path is
 * resolved once, beneath its fileset root (`target.root`, else the one of deps.roots
 * holding it), into an O_PATH fd whose inode must be `target`'s (the scan's): every later
 * step works on that inode through it, never on the path again (kernel/beneath.ts).
 */
export async function migrate(absPath: string, tierName: string, mode: MigrateMode, deps: ExecDeps, target?: ScannedTarget): Promise<Outcome> {
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

async function migratePinned(pin: Pinned, absPath: string, tierName: string, mode: MigrateMode, deps: ExecDeps): Promise<Outcome> {
  const tier = deps.tiers.get(tierName);
  if (!tier) return none('failed', `${mode} ${absPath}: unknown tier "${tierName}"`);
  if (mode === 'release' && !deps.marker) return none('failed', `release ${absPath}: ${NO_RECALL_SERVICE}`);

  // Idempotent runs must not even open released files (an open raises an event).
  const pre = peekRecord(pin);
  const wasMarked = pre?.state === 'released' || pre?.state === 'partial';
  const now = wasMarked ? stateNow(pre!, pin) : null;
  if (now === 'released') return none('skipped', 'already released');
  if (now === 'partial') {
    if (mode !== 'release') return none('skipped', 'partially recalled: the copy is already in the tier');
    return releasePartialLocked(pin, absPath, tier, deps);
  }
  // Not even opened while another action migrates it (our open would break its lease).
  if (inodeLocked(`${pin.st.dev}:${pin.st.ino}`)) return none('busy', 'busy: another action is migrating it');
  // Under a filesystem mark every open waits for our handler (recall/marks.ts): capped like a marked file's.
  return migrateFile(pin, absPath, tier, mode, deps, wasMarked || (deps.marker?.opensWait?.() ?? false));
}

/** The record of the pinned inode, read through its O_PATH fd's magic link (no open, no event). */
function peekRecord(pin: Pinned): StateRecord | null {
  try {
    return decodeRecord(getxattr(pin.proc, XATTR_STATE));
  } catch {
    return null;
  }
}

/** The state the record and the inode's size and mtime give (null: no fstat). */
function stateNow(rec: StateRecord, pin: Pinned): ReturnType<typeof deriveState> | null {
  let st: BigIntStats;
  try {
    st = fstatSync(pin.fd, { bigint: true });
  } catch {
    return null;
  }
  return deriveState(rec, { size: Number(st.size), mtimeNs: st.mtimeNs.toString() });
}

/** A path refused before anything was opened: replaced since the scan (busy, next run) or outside the rules. */
function refused(mode: string, absPath: string, e: unknown, scanned: boolean): Outcome {
  if (e instanceof BeneathError && e.code === 'REPLACED') return { status: 'busy', uploaded: 0, freed: 0, message: `${e.message}: next run` };
  if (scanned && e instanceof BeneathError && e.code === 'ENOENT') return { status: 'skipped', uploaded: 0, freed: 0, message: 'gone since the scan' };
  if (e instanceof BeneathError && e.code === 'EFTYPE') return { status: 'skipped', uploaded: 0, freed: 0, message: 'not a regular file' };
  return { status: 'failed', uploaded: 0, freed: 0, message: `${mode} ${e instanceof BeneathError ? e.message : `${absPath}: ${(e as Error).message}`}` };
}
