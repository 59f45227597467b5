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
// decodeRecord also accepts the named-field JSON object form.
export function encodeRecord(r: StateRecord): Buffer {
  const c = r.copy;
  const copy: unknown[] | 0 = c ? [c.tier, c.key, c.size, c.mtimeNs, c.sha256, c.archivedAt, c.chunk] : 0;
  if (c?.sumsSha && copy) copy.push(Buffer.from(c.sumsSha, 'hex').toString('base64url'));
  if (c?.foreign !== undefined && copy) copy.push(...(c.sumsSha ? [] : [0]), c.foreign);
  return Buffer.from(JSON.stringify([r.v, r.state, r.pinned ? 1 : 0, r.gen, copy]));
}

const STATES = new Set(['resident', 'archived', 'dirty', 'released', 'partial']);

function fromArray(a: unknown[]): StateRecord | null {
  const [v, state, pinned, gen, copy] = a;
  if (v !== 1 || typeof state !== 'string' || !STATES.has(state) || typeof gen !== 'number') return null;
  const r: StateRecord = { v: 1, state: state as StateRecord['state'], pinned: pinned === 1, gen };
  if (Array.isArray(copy)) {
    const [tier, key, size, mtimeNs, sha256, archivedAt, chunk, sums, foreign] = copy as unknown[];
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
