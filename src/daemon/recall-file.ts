// `POST /recall` inside the daemon: bring a released or partial file back whole by reading
// it. Each read raises a pre-content event that this same worker's recall service answers
// (fetch, pwrite through the event fd), and once every chunk is resident the service drops
// the mark and the state becomes `archived` (the tier copy stays valid).
//
// Invariant: the file is opened and read with fs.promises (libuv thread pool), never
// synchronously: the open and every read wait for an answer from this process's main
// thread (docs/daemon.md, "must not open marked files synchronously").
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { lgetxattr } from '../kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../engine/state-record.js';
import type { Outcome } from '../engine/execute.js';

const BLOCK = 4 * 1024 * 1024;

export async function recallByReading(path: string, signal: AbortSignal): Promise<Outcome> {
  const none = (status: Outcome['status'], message: string): Outcome => ({ status, uploaded: 0, freed: 0, message });
  let rec;
  try {
    rec = decodeRecord(lgetxattr(path, XATTR_STATE));
  } catch (e) {
    return none('failed', `recall ${path}: ${(e as Error).message}`);
  }
  if (!rec || (rec.state !== 'released' && rec.state !== 'partial')) return none('skipped', `not released (${rec?.state ?? 'resident'})`);
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NOATIME);
  } catch (e) {
    return none('failed', `recall ${path}: open: ${(e as Error).message}`);
  }
  try {
    const buf = Buffer.allocUnsafe(BLOCK);
    let pos = 0;
    for (;;) {
      signal.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, BLOCK, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
    }
    const after = decodeRecord(lgetxattr(path, XATTR_STATE));
    return { status: 'done', uploaded: 0, freed: 0, message: `recalled ${pos} bytes, state ${after?.state ?? 'resident'}` };
  } catch (e) {
    return none('failed', `recall ${path}: read: ${(e as Error).message}`);
  } finally {
    await fh.close();
  }
}
