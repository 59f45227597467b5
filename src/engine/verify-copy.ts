// The stale-copy guard: may an 'archived' file's tier copy be reused (release without
// upload)? Size and mtime alone are not proof: a same-size rewrite whose mtime was put
// back (cp --preserve=timestamps, touch -d, tar x) keeps both. ctime is: nobody can set
// it, and every change to the inode moves it (Linux 6.13+ multigrain timestamps: a change
// after a stat gets a distinct, later ctime). So the catalog keeps each file's ctime as
// of the engine's last change to it; when the file's ctime is still that one the copy is
// trusted, otherwise the file is hashed and compared with the copy's SHA-256. Release and
// archive (execute.ts) both ask; a partial file's resident chunks are checked chunk by
// chunk instead (verify-resident.ts: its holes cannot be hashed whole).
//
// Invariants:
// - hashing goes through the caller's fd (under its lease): never a second open, which
//   would wait on our own lease for 45 s;
// - no recorded ctime (no row, an older catalog, a rebuilt index, a catalog error) means
//   "hash", never "trust".
import { createHash } from 'node:crypto';
import { fstatSync, read } from 'node:fs';
import { promisify } from 'node:util';
import type { Catalog } from './catalog.js';
import type { StateRecord } from './state-record.js';
import { encodeMap } from '../chunks/extent-map.js';
import { scanExtents } from './extent-scan.js';

type Copy = NonNullable<StateRecord['copy']>;
import type { Logger } from '../log.js';

const preadAsync = promisify(read);

/** hashFd stopped because its caller's giveUp() said so. */
export class GaveUp extends Error {
  constructor() {
    super('gave up');
  }
}
const HASH_CHUNK = 1 << 20;

/** SHA-256 of the whole file behind `fd` by pread on the thread pool; `fd` stays open. */
export async function hashFd(fd: number, signal?: AbortSignal, giveUp?: () => boolean): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(HASH_CHUNK);
  let pos = 0;
  for (;;) {
    signal?.throwIfAborted();
    if (giveUp?.()) throw new GaveUp();
    const { bytesRead } = await preadAsync(fd, buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  // A break during the last read (the one at EOF) must not pass for a complete hash.
  signal?.throwIfAborted();
  return { sha256: hash.digest('hex'), bytes: pos };
}

/**
 * The file hashed the way its copy was made: SHA-256 of the whole file for a dense copy;
 * for a sparse copy the content digest SHA-256(map ‖ data extents) of its layout now
 * (upload.ts), so a file whose data moved hashes differently. `bytes`: the logical bytes covered.
 */
export async function hashAsCopy(fd: number, copy: Copy | undefined, signal?: AbortSignal, giveUp?: () => boolean): Promise<{ sha256: string; bytes: number }> {
  if (!copy?.sparse) return hashFd(fd, signal, giveUp);
  const size = Number(fstatSync(fd, { bigint: true }).size);
  const map = scanExtents(fd, size, undefined, signal);
  const hash = createHash('sha256').update(encodeMap(map));
  const buf = Buffer.allocUnsafe(HASH_CHUNK);
  for (const e of map.extents) {
    for (let pos = e.off; pos < e.off + e.len; ) {
      signal?.throwIfAborted();
      if (giveUp?.()) throw new GaveUp();
      const { bytesRead } = await preadAsync(fd, buf, 0, Math.min(buf.length, e.off + e.len - pos), pos);
      if (bytesRead === 0) return { sha256: hash.digest('hex'), bytes: pos };
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  }
  signal?.throwIfAborted();
  return { sha256: hash.digest('hex'), bytes: size };
}

/** The catalog's ctime for the inode, or null when none can be had (then: hash). */
export function recordedCtime(catalog: Catalog | null, dev: number, ino: number): string | null {
  try {
    return catalog?.ctimeOf(dev, ino) ?? null;
  } catch {
    return null;
  }
}

export interface VerifyDeps {
  catalog: Catalog | null;
  log: Logger;
}

/**
 * Whether `copy` still holds the bytes of the file behind `fd`, which the caller has
 * leased. `valid` false: the caller uploads a fresh copy as for a dirty file. ctime is read
 * here, under the lease (a stat from before the lease could predate a rewrite), and
 * returned: what was verified is the file as of that ctime. A caller that records it must
 * first check that the lease is unbroken and the ctime unchanged (a writer let in by a
 * break during the hash could rewrite the file, mtime put back, before we look again).
 */
export async function copyStillValid(
  fd: number,
  copy: NonNullable<StateRecord['copy']>,
  absPath: string,
  op: string,
  deps: VerifyDeps,
  signal?: AbortSignal,
): Promise<{ valid: boolean; ctimeNs: string }> {
  const st = fstatSync(fd, { bigint: true });
  const ctimeNs = st.ctimeNs.toString();
  const recorded = recordedCtime(deps.catalog, Number(st.dev), Number(st.ino));
  if (recorded === ctimeNs) return { valid: true, ctimeNs };
  const { sha256, bytes } = await hashAsCopy(fd, copy, signal);
  const fields = { path: absPath, op, tier: copy.tier, key: copy.key, ctimeNs, recordedCtimeNs: recorded, bytes };
  if (sha256 === copy.sha256 && bytes === copy.size) {
    deps.log.debug('ctime moved, content hashed: the copy is still valid', fields);
    return { valid: true, ctimeNs };
  }
  deps.log.warn('archived copy is stale: uploading a fresh one', { ...fields, sha256, copySha256: copy.sha256 });
  return { valid: false, ctimeNs };
}
