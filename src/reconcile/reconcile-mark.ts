// The daemon's answer to a released file a reconcile found where the catalog did not
// list it (renamed or unlisted while the daemon was down): start-up marking goes by the
// catalog's path, so this file may carry no mark, and a reader would get zeros. Mark it.
//
// The open is asynchronous: if the file is marked after all, the open raises an event
// that the recall service on this very thread answers. It waits on a threadpool thread
// meanwhile, so it takes a marked-io slot (engine/marked-io.ts): otherwise it and the
// engine's capped opens could hold every thread while the service needs one.
// The record is checked through our fd: only a released/partial file is marked (the
// invariant the engine relies on). The path is resolved beneath the daemon's fileset holding
// it (if any) with no symlink (kernel/beneath.ts), its inode checked against the one reconcile found, and
// opened through that inode's magic link: a user's swap cannot point the open elsewhere.
import { close, constants, open } from 'node:fs';
import { pinBeneath, rootIn, type Expected } from '../kernel/beneath.js';
import { promisify } from 'node:util';
import { fgetxattr } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../engine/state-record.js';
import { withMarkedIo } from '../engine/marked-io.js';

const openAsync = promisify(open);
const closeAsync = promisify(close);
const FLAGS = constants.O_RDONLY | constants.O_NOATIME | constants.O_NONBLOCK;

/** True when the file was (re)marked; false when its record is no longer released/partial. Throws when the path is refused. */
export async function markFoundReleased(absPath: string, markReleased: (fd: number) => void, expect?: Expected, roots?: readonly string[]): Promise<boolean> {
  // A released inode may live on only outside the filesets (a hard link whose fileset name was
  // replaced): it still needs its mark, so such a path is resolved with no symlink only.
  const pin = pinBeneath(absPath, rootIn(absPath, roots), expect);
  let fd: number;
  try {
    fd = await withMarkedIo(() => openAsync(pin.proc, FLAGS));
  } finally {
    pin.close();
  }
  try {
    const state = decodeRecord(fgetxattr(fd, XATTR_STATE, absPath))?.state;
    if (state !== 'released' && state !== 'partial') return false;
    markReleased(fd);
    return true;
  } finally {
    await closeAsync(fd);
  }
}
