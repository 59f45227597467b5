// Hashing (SHA-256, optionally MD5) and counting what a put() sends, failing before the end
// if the byte count or the expected checksum is wrong, so an upload never completes a short,
// long or corrupt object: BodyHash for a read loop, HashCheck as a pass-through stream.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { TierError } from './tier.js';

export interface HashCheckTarget {
  tier: string;
  key: string;
  size: number; // declared size
  sha256?: string; // expected hex, when the caller knew it in advance
}

/**
 * Counts and hashes a body chunk by chunk and throws (TierError) as soon as it is longer than
 * declared, or at finish() when it is short or its SHA-256 is not the expected one. For a
 * caller that reads in a loop (s3-put.ts putSingle); HashCheck streams the same checks.
 * `hashSha: false` trusts t.sha256 as the body's hash (a put whose server checks a signed
 * payload hash): it must then be given.
 */
export class BodyHash {
  bytes = 0;
  private hex = '';
  private readonly sha: Hash | undefined;
  private readonly md5: Hash | undefined;

  constructor(
    private readonly t: HashCheckTarget,
    o: { md5?: boolean; hashSha?: boolean } = {},
  ) {
    this.sha = o.hashSha === false ? undefined : createHash('sha256');
    this.md5 = o.md5 ? createHash('md5') : undefined;
    if (!this.sha && !t.sha256) throw new Error('BodyHash: no SHA-256 to trust');
  }

  update(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > this.t.size) throw this.err('ShortObject', `body is longer than the declared ${this.t.size} bytes`);
    this.sha?.update(chunk);
    this.md5?.update(chunk);
  }

  finish(): void {
    if (this.bytes !== this.t.size) throw this.err('ShortObject', `body ended after ${this.bytes} of ${this.t.size} bytes`);
    this.hex = this.sha ? this.sha.digest('hex') : this.t.sha256!;
    if (this.t.sha256 && this.t.sha256 !== this.hex) throw this.err('Corrupt', `SHA-256 ${this.hex} differs from the expected ${this.t.sha256}`);
  }

  /** Hex SHA-256; valid after finish(). */
  get sha256(): string {
    return this.hex;
  }

  md5Base64(): string | undefined {
    return this.md5?.digest('base64');
  }

  private err(code: 'ShortObject' | 'Corrupt', detail: string): TierError {
    return new TierError(code, 'put', this.t.tier, this.t.key, detail);
  }
}

/** BodyHash as a pass-through stream: fails the stream before its end on a wrong count or checksum. */
export class HashCheck extends Transform {
  private readonly h: BodyHash;

  constructor(t: HashCheckTarget, withMd5 = false) {
    super();
    this.h = new BodyHash(t, { md5: withMd5 });
  }

  get bytes(): number {
    return this.h.bytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.h.update(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.h.finish();
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }

  /** Hex SHA-256; valid once the stream has ended. */
  get sha256(): string {
    return this.h.sha256;
  }

  md5Base64(): string | undefined {
    return this.h.md5Base64();
  }
}

/** A caller-supplied sha256 is only trusted as an expectation if it looks like one. */
export function expectedSha(sha: string | undefined): string | undefined {
  return sha && /^[0-9a-f]{64}$/.test(sha) ? sha : undefined;
}
