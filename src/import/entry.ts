// One imported object as one released file: create it, or look at / refresh the one there.
//
// Order of a creation (the file is marked before it has a visible name): a root-only
// temporary name (O_EXCL|O_NOFOLLOW, beneath.ts) -> ftruncate to the object's size (no data
// blocks) -> trusted.tier.state record (released, foreign copy with the validator) ->
// pre-content mark -> owner, mode, mtime -> catalog row -> rename into place without
// replacing anything (RENAME_NOREPLACE). Any failure removes the temporary and its row.
//
// A refresh (the object changed, the file is untouched: still 'released' at the recorded
// size and mtime) builds the new file the same way and swaps it in with RENAME_EXCHANGE,
// then looks at the old inode again: if anyone began to recall or write it meanwhile it
// is swapped back and reported, else unlinked. An access to the old inode after that
// finds the object changed: EIO, never stale bytes mixed with new ones.
import { closeSync, fstatSync, ftruncateSync } from 'node:fs';
import { fileHandleOfFd, fsetxattr, futimens, getxattr, nsToTimespec } from '../kernel/libc.js';
import { rowFromRecord, type Catalog } from '../engine/catalog.js';
import { XATTR_STATE, copyChunkFor, decodeRecord, encodeRecord, type StateRecord } from '../record/state-record.js';
import type { ObjectInfo } from '../tiers/tier.js';
import { stillMatches } from '../tiers/validator.js';
import { createTemp, exchangeIn, openPathAt, publishMode, renameIn, unlinkIn } from './dir-cursor.js';
import type { Ownership } from './ownership.js';

export interface EntryEnv {
  tier: string;
  /** The tier's chunk; a file gets copyChunkFor of it (at most 65536 chunks). */
  chunk: number;
  own: Ownership;
  catalog: Catalog | null;
  markReleased(fd: number): void | Promise<void>;
  now: number;
}

export type EntryOutcome =
  | 'created'
  | 'unchanged'
  | 'refreshed'
  | 'conflict' // a name that is not this object's imported file: left alone
  | 'kept-local'; // the object changed, but the file was recalled or changed here: left alone

export interface Seen {
  record: StateRecord | null;
  size: number;
  mtimeNs: bigint;
  isFile: boolean;
  dev: number;
  ino: number;
}

/** What is at dirfd/name now, through an O_PATH fd (no recall event); null: nothing. */
export function look(dirfd: number, name: string): Seen | null {
  const fd = openPathAt(dirfd, name);
  if (fd === null) return null;
  try {
    return lookFd(fd);
  } finally {
    closeSync(fd);
  }
}

function lookFd(fd: number): Seen {
  const st = fstatSync(fd, { bigint: true });
  const isFile = (st.mode & 0o170000n) === 0o100000n;
  // f*xattr refuse O_PATH fds; the magic link reaches the same inode.
  const record = isFile ? decodeRecord(getxattr(`/proc/self/fd/${fd}`, XATTR_STATE)) : null;
  return { record, size: Number(st.size), mtimeNs: st.mtimeNs, isFile, dev: Number(st.dev), ino: Number(st.ino) };
}

/** The file is this tier's import of `key`. */
export function isImportOf(s: Seen, tier: string, key: string): boolean {
  const c = s.record?.copy;
  return s.isFile && c?.foreign !== undefined && c.tier === tier && c.key === key;
}

/** Untouched since import: nothing recalled, nothing written (the recorded size and mtime). */
export function untouched(s: Seen): boolean {
  const c = s.record?.copy;
  return s.record?.state === 'released' && c !== undefined && s.size === c.size && s.mtimeNs === BigInt(c.mtimeNs);
}

export function recordFor(o: ObjectInfo, validator: string, env: EntryEnv): StateRecord {
  const ms = o.lastModified?.getTime() ?? env.now;
  return {
    v: 1,
    state: 'released',
    pinned: false,
    gen: 1,
    copy: { tier: env.tier, key: o.key, size: o.size, mtimeNs: (BigInt(ms) * 1_000_000n).toString(), sha256: '', archivedAt: env.now, chunk: copyChunkFor(env.chunk, o.size), foreign: validator },
  };
}

/** Builds the released file under a temporary name in dirfd; returns that name (the row is written for `absPath`). */
async function build(dirfd: number, absPath: string, rec: StateRecord, env: EntryEnv): Promise<{ tmp: string; dev: number; ino: number }> {
  const { fd, name } = await createTemp(dirfd);
  let ok = false;
  let row: { dev: number; ino: number } | null = null;
  try {
    const copy = rec.copy!;
    ftruncateSync(fd, copy.size);
    fsetxattr(fd, XATTR_STATE, encodeRecord(rec), absPath);
    await env.markReleased(fd);
    publishMode(fd, env.own);
    const mt = nsToTimespec(BigInt(copy.mtimeNs));
    futimens(fd, mt, mt, absPath);
    const st = fstatSync(fd);
    row = { dev: st.dev, ino: st.ino };
    const r = rowFromRecord({ dev: st.dev, ino: st.ino, absPath, size: copy.size }, rec, 'released', env.now, fileHandleOfFd(fd));
    if (r) env.catalog?.upsert(r);
    ok = true;
    return { tmp: name, ...row };
  } finally {
    closeSync(fd);
    if (!ok) {
      try {
        unlinkIn(dirfd, name);
      } catch {
        /* already gone */
      }
      if (row) env.catalog?.remove(row.dev, row.ino);
    }
  }
}

/** A new file for an object with no file of that name. 'conflict' when a name appeared meanwhile. */
export async function create(dirfd: number, name: string, absPath: string, o: ObjectInfo, validator: string, env: EntryEnv): Promise<EntryOutcome> {
  const b = await build(dirfd, absPath, recordFor(o, validator, env), env);
  try {
    renameIn(dirfd, b.tmp, name, false);
    return 'created';
  } catch (e) {
    unlinkIn(dirfd, b.tmp);
    env.catalog?.remove(b.dev, b.ino);
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return 'conflict';
    throw e;
  }
}

/** The object at `name` changed remotely: replace the untouched file `old`, else keep it. */
export async function refresh(dirfd: number, name: string, absPath: string, old: Seen, o: ObjectInfo, validator: string, env: EntryEnv): Promise<EntryOutcome> {
  if (!untouched(old)) return 'kept-local';
  const b = await build(dirfd, absPath, recordFor(o, validator, env), env);
  exchangeIn(dirfd, b.tmp, name); // b.tmp now names the old inode
  const now = look(dirfd, b.tmp);
  if (now && now.ino === old.ino && now.dev === old.dev && untouched(now)) {
    unlinkIn(dirfd, b.tmp);
    env.catalog?.remove(old.dev, old.ino);
    return 'refreshed';
  }
  // Someone recalled or wrote it between our look and the swap: theirs wins.
  exchangeIn(dirfd, b.tmp, name);
  unlinkIn(dirfd, b.tmp);
  env.catalog?.remove(b.dev, b.ino);
  return 'kept-local';
}

/** Decides and acts for one listed object whose file name is dirfd/name. */
export async function importOne(dirfd: number, name: string, absPath: string, o: ObjectInfo, validator: string, env: EntryEnv, dryRun: boolean): Promise<EntryOutcome> {
  const old = look(dirfd, name);
  if (!old) return dryRun ? 'created' : create(dirfd, name, absPath, o, validator, env);
  if (!isImportOf(old, env.tier, o.key)) return 'conflict';
  const copy = old.record!.copy!;
  if (stillMatches(copy.foreign!, copy.size, o)) return 'unchanged';
  if (dryRun) return untouched(old) ? 'refreshed' : 'kept-local';
  return refresh(dirfd, name, absPath, old, o, validator, env);
}
