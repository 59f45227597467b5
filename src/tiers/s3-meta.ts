// ObjectMeta <-> S3 user metadata (x-amz-meta-*). Header values must be ASCII, so the
// path is percent-encoded; numbers are decimal (mode octal).
import type { ObjectMeta } from './tier.js';

export function toS3Metadata(m: ObjectMeta, sha256: string | undefined): Record<string, string> {
  const md: Record<string, string> = {
    size: String(m.size),
    path: encodeURIComponent(m.path),
    mode: m.mode.toString(8),
    uid: String(m.uid),
    gid: String(m.gid),
    'mtime-ms': String(m.mtimeMs),
  };
  if (sha256) md.sha256 = sha256;
  return md;
}

export function fromS3Metadata(md: Record<string, string> | undefined): Partial<ObjectMeta> | undefined {
  if (!md || Object.keys(md).length === 0) return undefined;
  const out: Partial<ObjectMeta> = {};
  const num = (v: string | undefined, radix = 10) => (v !== undefined && v !== '' ? parseInt(v, radix) : NaN);
  if (md.sha256) out.sha256 = md.sha256;
  if (md.path !== undefined) {
    try {
      out.path = decodeURIComponent(md.path);
    } catch {
      out.path = md.path;
    }
  }
  const nums: [keyof ObjectMeta, number][] = [
    ['size', num(md.size)],
    ['mode', num(md.mode, 8)],
    ['uid', num(md.uid)],
    ['gid', num(md.gid)],
    ['mtimeMs', md['mtime-ms'] !== undefined ? Number(md['mtime-ms']) : NaN],
  ];
  for (const [k, v] of nums) if (Number.isFinite(v)) (out as Record<string, unknown>)[k] = v;
  return out;
}
