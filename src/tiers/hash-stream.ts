// A pass-through that hashes (SHA-256, optionally MD5) and counts what a put() streams,
// and fails the stream before its end if the byte count or the expected checksum is wrong,
// so an upload consuming it never completes a short, long or corrupt object.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { TierError } from './tier.js';

export interface HashCheckTarget {
  tier: string;
  key: string;
  size: number; // declared size
  sha256?: string; // expected hex, when the caller knew it in advance
}

export class HashCheck extends Transform {
  readonly sha = createHash('sha256');
  bytes = 0;
  private hex = '';
  private readonly md5: Hash | undefined;

  constructor(
    private readonly t: HashCheckTarget,
    withMd5 = false,
  ) {
    super();
    this.md5 = withMd5 ? createHash('md5') : undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.t.size) {
      cb(this.err('ShortObject', `body is longer than the declared ${this.t.size} bytes`));
      return;
    }
    this.sha.update(chunk);
    this.md5?.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.bytes !== this.t.size) {
      cb(this.err('ShortObject', `body ended after ${this.bytes} of ${this.t.size} bytes`));
      return;
    }
    this.hex = this.sha.digest('hex');
    if (this.t.sha256 && this.t.sha256 !== this.hex) {
      cb(this.err('Corrupt', `SHA-256 ${this.hex} differs from the expected ${this.t.sha256}`));
      return;
    }
    cb();
  }

  /** Hex SHA-256; valid once the stream has ended. */
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

/** A caller-supplied sha256 is only trusted as an expectation if it looks like one. */
export function expectedSha(sha: string | undefined): string | undefined {
  return sha && /^[0-9a-f]{64}$/.test(sha) ? sha : undefined;
}
