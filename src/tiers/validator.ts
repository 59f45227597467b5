// Validators of objects tier did not write (imported, "foreign"): what recall checks on
// every GET so a replaced object gives EIO, never bytes of two versions. Pure.
//
// Forms: `etag:<ETag as the server sends it, quotes included>` (preferred), or
// `lm:<Last-Modified, ms since epoch>` with the size kept in the record beside it.
import type { ObjectInfo } from './tier.js';

export type Validator = { kind: 'etag'; etag: string } | { kind: 'lm'; ms: number };

/** The validator a listing (or stat) gives an object; null when it gives neither. */
export function validatorOf(o: Pick<ObjectInfo, 'etag' | 'lastModified'>): string | null {
  if (o.etag) return `etag:${o.etag}`;
  if (o.lastModified) return `lm:${o.lastModified.getTime()}`;
  return null;
}

export function parseValidator(v: string): Validator | null {
  if (v.startsWith('etag:') && v.length > 5) return { kind: 'etag', etag: v.slice(5) };
  const m = /^lm:(-?\d+)$/.exec(v);
  return m ? { kind: 'lm', ms: Number(m[1]) } : null;
}

/** Does an object's current info still match the validator recorded with `size`? */
export function stillMatches(v: string, size: number, now: Pick<ObjectInfo, 'etag' | 'lastModified' | 'size'>): boolean {
  const p = parseValidator(v);
  if (!p || now.size !== size) return false;
  if (p.kind === 'etag') return now.etag === p.etag;
  return now.lastModified !== undefined && Math.floor(now.lastModified.getTime()) === p.ms;
}

/** A validator as shown in logs and reports. */
export function showValidator(v: string | null | undefined): string {
  return v ?? '(none)';
}
