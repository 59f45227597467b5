// Start-up marking: every file the catalog lists as released or partial gets its
// pre-content mark before the daemon says `ready`. The xattr record is the truth, the
// catalog only the index, so each file is checked before it is marked. 'dirty' rows are
// opened too: a released file written past its end is 'dirty' by size but its record
// still says released/partial (holes); a dirty row whose record says otherwise (an
// archived file written) needs no mark and is passed over without a warning.
//
// Invariants:
// - Opened O_RDONLY|O_NOFOLLOW|O_NOATIME: marking must not change atime (age rules) and
//   must never follow a symlink planted where a released file was.
// - A file whose record no longer says released/partial, or whose inode is not the one
//   the catalog saw, is skipped (logged): something else replaced it.
// - A missing file is logged and skipped, never fatal: the rest must still be marked.
// - The path is resolved beneath the daemon's filesets with no symlink in any component
//   and no mount crossed (kernel/beneath.ts; a row whose path now leads through a
//   user's symlink is skipped), first opened O_PATH (no event, no lease break) and its inode checked
//   against the row before the real open, which goes through /proc/self/fd (the same inode,
//   whatever the path does meanwhile). A stale row whose path now names a file marked
//   earlier in this pass (a hard link or a rename made while the daemon was down) would
//   otherwise raise a permission event on that open that only this thread could answer:
//   start-up would hang. O_NONBLOCK: a file leased by someone else (Samba, knfsd) is
//   skipped at once, not waited on for lease-break-time (reconcile marks it later).
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { fgetxattr, fileHandleOfFd } from '../kernel/libc.js';
import { resolveBeneath, rootIn } from '../kernel/beneath.js';
import { XATTR_STATE, decodeRecord } from '../record/state-record.js';
import type { Logger } from '../log.js';

export interface ReleasedRow {
  path: string;
  /** Where to open it when that is not `path`: through the fileset's backing, before the root is bound. */
  openPath?: string;
  /** The catalog's state; 'dirty': mark only if the record says released/partial, silently skip otherwise. */
  state?: string;
  /** The inode the catalog recorded, when it has one. */
  dev?: number | bigint | null;
  ino?: number | bigint | null;
  /** The catalog's file handle: checked too when present (an inode number can be reused). */
  handle?: Buffer | null;
}

export interface MarkResult {
  marked: number;
  skipped: number;
  /** True in a restarted worker: the marks were kept by the group, none placed now. */
  inherited: boolean;
  /** Filesystem marks in the group (recall/marks.ts): their released files need no mark of their own. */
  filesystems?: number;
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOATIME | constants.O_NONBLOCK;
const NOT_RELEASED = 'record is not released/partial';

export function markReleasedFiles(
  rows: Iterable<ReleasedRow>,
  markReleased: (fd: number) => void,
  log: Logger,
  /**
   * The filesets in force: a row beneath one is resolved beneath it (no mount crossed).
   * A row outside all of them is still marked (its fileset may have left the policy, its
   * holes have not), resolved with no symlink in any component; inode and record checked.
   */
  roots?: readonly string[],
): MarkResult {
  let marked = 0;
  let skipped = 0;
  for (const row of rows) {
    const why = markOne(row, markReleased, roots);
    if (why === null) marked++;
    else if (why === NOT_RELEASED && row.state === 'dirty') continue; // written archived file: nothing to mark
    else {
      skipped++;
      log.warn('not marked at start-up', { path: row.path, op: 'mark', reason: why });
    }
  }
  return { marked, skipped, inherited: false };
}

/** Returns null when marked, else why not. */
function markOne(row: ReleasedRow, markReleased: (fd: number) => void, roots?: readonly string[]): string | null {
  let pathFd: number;
  try {
    const at = row.openPath ?? row.path;
    pathFd = resolveBeneath(at, rootIn(at, roots));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'missing' : code === 'ELOOP' ? 'is a symlink now, or has one in its path (not followed)' : (e as Error).message;
  }
  let fd: number;
  try {
    const st = fstatSync(pathFd, { bigint: true });
    if (st.isSymbolicLink()) return 'is a symlink now';
    if (!st.isFile()) return 'not a regular file';
    if (row.ino != null && BigInt(row.ino) !== st.ino) return `inode changed (catalog ${row.ino}, file ${st.ino})`;
    if (row.dev != null && BigInt(row.dev) !== st.dev) return `device changed (catalog ${row.dev}, file ${st.dev})`;
    if (row.handle && row.handle.length > 0) {
      const h = fileHandleOfFd(pathFd);
      if (h && !h.equals(row.handle)) return 'inode changed (file handle differs from the catalog)';
    }
    fd = openSync(`/proc/self/fd/${pathFd}`, OPEN_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EAGAIN' || code === 'EWOULDBLOCK' ? 'leased by another process: left to reconcile' : (e as Error).message;
  } finally {
    closeSync(pathFd);
  }
  try {
    const rec = decodeRecord(fgetxattr(fd, XATTR_STATE, row.path));
    if (!rec) return 'no state record';
    if (rec.state !== 'released' && rec.state !== 'partial') return row.state === 'dirty' ? NOT_RELEASED : `state is ${rec.state}`;
    markReleased(fd);
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    closeSync(fd);
  }
}
