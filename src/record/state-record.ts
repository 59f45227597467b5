// The per-file HSM record. It travels with the inode in `trusted.` extended attributes:
// only CAP_SYS_ADMIN can read or write them, so users can neither forge a record that
// points a recall at someone else's object nor copy one along with a file (cp -a and
// tar --xattrs skip trusted.* for non-root). The catalog only indexes these records.
//
// trusted.tier.state     JSON StateRecord (absent: resident and unpinned)
// trusted.tier.resident  for state 'partial': bitmap, bit i set = chunk i is durable on disk
//
// Invariants:
// - 'released' and 'partial' files carry a pre-content mark while a recall service runs.
// - 'dirty' means the local data is complete and differs from the tier copy.
// - a chunk bit is set only after its bytes were written and fdatasync'ed.
import type { FileState } from '../dsl/ast.js';

export const XATTR_STATE = 'trusted.tier.state';
export const XATTR_RESIDENT = 'trusted.tier.resident';

export interface StateRecord {
  v: 1;
  state: FileState;
  pinned: boolean;
  /** Set once archived: where the copy is and what it must match. */
  copy?: {
    tier: string;
    key: string;
    size: number;
    /** st_mtime at archive time, nanoseconds as a decimal string (exact). */
    mtimeNs: string;
    sha256: string;
    archivedAt: number; // ms since epoch
    chunk: number; // chunk size of the resident bitmap
    /** SHA-256 (hex) of the `${key}.sums` object (32-byte SHA-256 per chunk). Absent in records
     *  made before per-chunk sums: those recalls verify only a whole-object GET. */
    sumsSha?: string;
    /** A sparse file's copy (chunks/extent-map.ts): only the data extents are stored, packed; the map
     *  heads the sums object. `sha256` is then the content digest SHA-256(map ‖ packed data),
     *  not the object's own. Absent: dense copy, the object is the file. */
    sparse?: { stored: number; sumsLen: number };
    /** The sums object is two-level (chunks/sums-tree.ts): `sumsSha` is the SHA-256 of its
     *  level-1 table, not of the object. Dense copies only. Absent: one flat list of sums. */
    tree?: true;
    /** Set for an imported object tier did not write (src/import): its validator, `etag:<ETag>`
     *  or `lm:<Last-Modified ms>` (with `size`). No sums, sha256 ''; recall checks the validator
     *  on every GET, and tier never writes or deletes this key. */
    foreign?: string;
  };
  /** Bumped on every archive, so a late writer can tell records apart. */
  gen: number;
}

// Encoding: a positional JSON array, [1, state, pinned 0|1, gen, copy | 0] with copy as
// [tier, key, size, mtimeNs, sha256, archivedAt, chunk, sums?] where sums is the sums
// object's SHA-256 in unpadded base64url (43 bytes instead of 64: a full record stays
// under 250 bytes). Older records have no 8th element. An imported (foreign) copy has a
// 9th element, its validator, and 0 as the 8th (no sums). Compact on purpose: XFS keeps
// an attribute value up to ~250 bytes inside the inode (measured: 250 in, 260 out), so a
// released file there has st_blocks 0; the named-field form needed an attribute block.
// (ext4 with 256-byte inodes holds only ~60 bytes in-inode: one xattr block remains.)
// decodeRecord also accepts the named-field JSON object form. A copy with two-level sums
// (chunks/sums-tree.ts) has its chunk negated. A sparse file's copy adds a 9th
// element [stored, sumsLen] (object bytes, sums object bytes); dense copies never have it.
export function encodeRecord(r: StateRecord): Buffer {
  const c = r.copy;
  // A two-level copy's chunk is written negated (one byte): a version from before refuses
  // the record's copy (chunk <= 0: EIO at recall), never reads its sums as a flat list.
  const copy: unknown[] | 0 = c ? [c.tier, c.key, c.size, c.mtimeNs, c.sha256, c.archivedAt, c.tree ? -c.chunk : c.chunk] : 0;
  if (c?.sumsSha && copy) copy.push(Buffer.from(c.sumsSha, 'hex').toString('base64url'));
  // The 9th element: a sparse copy's [stored, sumsLen] (with sums), or an imported copy's validator.
  if (c?.sparse && c.sumsSha && copy) copy.push([c.sparse.stored, c.sparse.sumsLen]);
  else if (c?.foreign !== undefined && copy) copy.push(...(c.sumsSha ? [] : [0]), c.foreign);
  return Buffer.from(JSON.stringify([r.v, r.state, r.pinned ? 1 : 0, r.gen, copy]));
}

function validSparse(v: unknown, size: number): { stored: number; sumsLen: number } | null {
  if (!Array.isArray(v) || v.length !== 2) return null;
  const [stored, sumsLen] = v as unknown[];
  if (!Number.isSafeInteger(stored) || !Number.isSafeInteger(sumsLen)) return null;
  if ((stored as number) < 0 || (stored as number) > size || (sumsLen as number) <= 0) return null;
  return { stored: stored as number, sumsLen: sumsLen as number };
}

/** Bytes of the copy's object: the packed data of a sparse copy, else the whole file. */
export function storedSize(copy: NonNullable<StateRecord['copy']>): number {
  return copy.sparse ? copy.sparse.stored : copy.size;
}

const STATES = new Set(['resident', 'archived', 'dirty', 'released', 'partial']);

function fromArray(a: unknown[]): StateRecord | null {
  const [v, state, pinned, gen, copy] = a;
  if (v !== 1 || typeof state !== 'string' || !STATES.has(state) || typeof gen !== 'number') return null;
  const r: StateRecord = { v: 1, state: state as StateRecord['state'], pinned: pinned === 1, gen };
  if (Array.isArray(copy)) {
    const [tier, key, size, mtimeNs, sha256, archivedAt, chunk, sums, extra] = copy as unknown[];
    const foreign = typeof extra === 'string' ? extra : undefined;
    const sparse = typeof extra === 'string' ? undefined : extra;
    if (typeof tier !== 'string' || typeof key !== 'string' || typeof size !== 'number' || typeof mtimeNs !== 'string') return null;
    if (typeof sha256 !== 'string' || typeof archivedAt !== 'number' || typeof chunk !== 'number') return null;
    r.copy = { tier, key, size, mtimeNs, sha256, archivedAt, chunk };
    if (foreign !== undefined) {
      if (typeof foreign !== 'string' || foreign === '') return null;
      r.copy.foreign = foreign;
    }
    if (sums !== undefined && sums !== 0) {
      if (typeof sums !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(sums)) return null;
      r.copy.sumsSha = Buffer.from(sums, 'base64url').toString('hex');
    }
    if (sparse !== undefined) {
      const sp = validSparse(sparse, size);
      if (!sp || !r.copy.sumsSha) return null; // a map lives in the sums object
      r.copy.sparse = sp;
    }
    if (chunk < 0) {
      // Two-level sums: dense, with sums, never imported.
      if (!r.copy.sumsSha || r.copy.sparse || r.copy.foreign !== undefined) return null;
      r.copy.chunk = -chunk;
      r.copy.tree = true;
    }
  } else if (copy !== 0) return null;
  return r;
}

/** Decodes a record; returns null for anything malformed (treated as no record, never trusted). */
export function decodeRecord(buf: Buffer | null | undefined): StateRecord | null {
  if (!buf || buf.length === 0) return null;
  try {
    const parsed = JSON.parse(buf.toString('utf8')) as unknown;
    if (Array.isArray(parsed)) return fromArray(parsed);
    const r = parsed as StateRecord;
    if (!r || r.v !== 1 || typeof r.state !== 'string' || typeof r.gen !== 'number') return null;
    if (r.copy && (typeof r.copy.key !== 'string' || typeof r.copy.size !== 'number')) return null;
    if (r.copy?.sumsSha !== undefined && !/^[0-9a-f]{64}$/.test(r.copy.sumsSha)) return null;
    if (r.copy?.sparse !== undefined) {
      const sp = validSparse([r.copy.sparse?.stored, r.copy.sparse?.sumsLen], r.copy.size);
      if (!sp || !r.copy.sumsSha) return null;
    }
    if (r.copy?.tree !== undefined && (r.copy.tree !== true || r.copy.sparse || !r.copy.sumsSha || r.copy.foreign !== undefined)) return null;
    return r;
  } catch {
    return null;
  }
}

/** The tier object holding a copy's per-chunk SHA-256 sums (32 bytes each, in chunk order). */
export const SUMS_SUFFIX = '.sums';
export const sumsKey = (key: string): string => key + SUMS_SUFFIX;

export function chunkCount(size: number, chunk: number): number {
  return size === 0 ? 0 : Math.ceil(size / chunk);
}

/** Leaf sums per level-1 block of a two-level sums object (chunks/sums-tree.ts): 2 KiB of leaves. */
export const TREE_BLOCK = 64;

/** Bytes of a two-level sums object over `chunks` chunks: level 1, then 32 bytes per chunk. */
export function treeObjLen(chunks: number): number {
  return Math.ceil(chunks / TREE_BLOCK) * 32 + chunks * 32;
}

/** A dense copy up to this size is recalled whole at its first read (recall/handler.ts: at most 256 KiB fetched for a byte read) and checked against its record. */
export const WHOLE_BY_RECORD_MAX = 256 * 1024;

/**
 * A dense copy small enough to be checked whole against the record's SHA-256 (one chunk, or
 * recalled whole at its first read): no `${key}.sums` object is written (upload.ts) or
 * fetched (a reader that needs its chunk sums GETs the object, checks it against `sha256`
 * and sums it itself: chunks/sums-fetch.ts). Its `sumsSha` is that of its flat chunk sums.
 * Older copies of this size may have an object: it is simply not read.
 */
export function sumsInRecord(copy: { size: number; chunk: number; sparse?: unknown; foreign?: unknown }): boolean {
  if (copy.sparse !== undefined || copy.foreign !== undefined) return false;
  return chunkCount(copy.size, copy.chunk) === 1 || copy.size <= WHOLE_BY_RECORD_MAX;
}

/** Most chunks a new dense copy gets (its resident map is stored run-length coded: resident.ts). */
export const MAX_COPY_CHUNKS = 65536;
/** A sparse copy keeps the earlier rule: at least 64 KiB, at most 16384 chunks (flat sums, fetched whole with its map). */
export const SPARSE_MIN_CHUNK = 64 * 1024;
export const MAX_SPARSE_CHUNKS = 16384;

/**
 * The chunk (verified unit and resident-map unit) of a new copy of `size` bytes: the
 * tier's `chunk`, doubled until the file has at most MAX_COPY_CHUNKS of them (a bigger
 * map would not fit an xattr and the file would be recalled whole). Pure.
 */
export function copyChunkFor(tierChunk: number, size: number, sparse = false): number {
  let c = sparse ? Math.max(tierChunk, SPARSE_MIN_CHUNK) : tierChunk;
  const most = sparse ? MAX_SPARSE_CHUNKS : MAX_COPY_CHUNKS;
  while (Math.ceil(size / c) > most) c *= 2;
  return c;
}

/**
 * The state a record means for the file as it is now. A record whose copy no longer
 * matches the local size or mtime is 'dirty' (the local data is the only truth);
 * the copy is never trusted for a file that changed under it.
 */
export function deriveState(
  rec: StateRecord | null,
  st: { size: number; mtimeNs: string },
): FileState {
  if (!rec) return 'resident';
  const copy = rec.copy;
  if (!copy) return rec.state === 'dirty' ? 'dirty' : 'resident';
  // Released/partial data lives in the tier: a write or truncate raises an event through
  // the mark (the recall service then records the change), but `touch` changes mtime
  // alone; the data is still only in the tier, so that file is not 'dirty' (which would
  // claim complete local data).
  if (rec.state === 'released' || rec.state === 'partial') return copy.size === st.size ? rec.state : 'dirty';
  const same = copy.size === st.size && copy.mtimeNs === st.mtimeNs;
  if (!same) return 'dirty';
  return rec.state;
}
