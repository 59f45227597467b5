// Object keys are the same for every tier: relative, '/'-separated, no '.'/'..' or empty
// segments, and none of the names the tiers reserve for their own in-flight files.
import { TierError } from './tier.js';

const MAX_KEY = 900; // S3 allows 1024 bytes; leave room for a tier prefix
export const TEMP_PREFIX = '.tmp-'; // local tier: in-flight data/meta files
export const META_SUFFIX = '.meta.json'; // local tier: metadata sidecar
export const STAGING_DIR = '.tier-staging'; // s3 tier: multipart uploads awaiting their checksum

export function checkKey(tier: string, op: string, key: string): void {
  const bad = (why: string): never => {
    throw new TierError('InvalidKey', op, tier, key, why);
  };
  if (typeof key !== 'string' || key.length === 0) bad('empty key');
  if (Buffer.byteLength(key) > MAX_KEY) bad(`longer than ${MAX_KEY} bytes`);
  if (key.startsWith('/')) bad('absolute key');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(key)) bad('control character in key');
  const segs = key.split('/');
  for (const seg of segs) {
    if (seg === '' || seg === '.' || seg === '..') bad(`bad path segment ${JSON.stringify(seg)}`);
    if (seg.startsWith(TEMP_PREFIX) || seg === STAGING_DIR) bad(`segment ${JSON.stringify(seg)} is reserved`);
  }
  if (key.endsWith(META_SUFFIX)) bad(`keys ending in ${META_SUFFIX} are reserved`);
}

/** A list() prefix may end in '/' or be empty, but must not climb out of the tier. */
export function checkPrefix(tier: string, prefix: string): void {
  if (prefix === '') return;
  checkKey(tier, 'list', prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}
