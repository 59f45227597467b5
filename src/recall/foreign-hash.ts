// An imported (foreign) copy has no SHA-256 of its own: tier did not write it. When one
// becomes whole locally, the handler hashes it once (reads through the event fd raise no
// event) and records the sum, so a later release can check the local bytes still are the
// object's and punch them again without an upload (engine/verify-copy.ts) — eviction.
//
// Rules: the hash counts only if ctime, size and mtime are the same before and after the
// read (nobody can set ctime back), else no sum is recorded and a later release uploads a
// copy of its own, as for any changed file. Every chunk was fetched under the same
// validator, so the local bytes are one version of the object.
import { fstatSync } from 'node:fs';
import { hashFd } from '../engine/verify-copy.js';
import type { InodeEntry } from './inode.js';

export function wantsForeignHash(e: InodeEntry): boolean {
  return e.copy.foreign !== undefined && !e.copy.sha256 && !e.diverged;
}

/** SHA-256 (hex) of the whole file behind fd, or null when it changed while read. */
export async function hashWhole(fd: number, expect: InodeEntry['expect']): Promise<string | null> {
  const st0 = fstatSync(fd, { bigint: true });
  if (Number(st0.size) !== expect.size || st0.mtimeNs !== expect.mtimeNs) return null;
  const { sha256, bytes } = await hashFd(fd);
  if (bytes !== expect.size) return null;
  const st1 = fstatSync(fd, { bigint: true });
  if (st1.ctimeNs !== st0.ctimeNs || st1.size !== st0.size || st1.mtimeNs !== st0.mtimeNs) return null;
  return sha256;
}

/** The entry's record and copy carry the sum (persisted by the caller's persistComplete). */
export function recordHash(e: InodeEntry, sha256: string): void {
  const copy = { ...e.copy, sha256 };
  e.copy = copy;
  e.record = { ...e.record, copy };
}
