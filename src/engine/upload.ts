// Uploading a file through an fd the engine already holds (under its lease): a pread
// stream that never closes the fd, SHA-256 on the way, then verification against what the
// tier reports (put result, stat size, stored checksum).
import { createHash } from 'node:crypto';
import { read, type BigIntStats } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { promisify } from 'node:util';
import type { Tier } from '../tiers/tier.js';
import { faultPoint } from './fault.js';

const preadAsync = promisify(read);

/**
 * Reads a file through an fd we own with pread, as a stream. Unlike fs.ReadStream it
 * never closes the fd (destroy() on a ReadStream closes it even with autoClose off),
 * and settle() waits for a read still in flight so the caller may then close the fd.
 */
class FdSource {
  private inflight: Promise<unknown> | null = null;
  constructor(
    private readonly fd: number,
    private readonly chunk = 1 << 20,
  ) {}
  stream(): Readable {
    return Readable.from(this.gen(), { objectMode: false });
  }
  private async *gen(): AsyncGenerator<Buffer> {
    let pos = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(this.chunk);
      const p = preadAsync(this.fd, buf, 0, buf.length, pos);
      this.inflight = p;
      const { bytesRead } = await p;
      this.inflight = null;
      if (bytesRead === 0) return;
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  }
  async settle(): Promise<void> {
    if (this.inflight) await this.inflight.catch(() => {});
  }
}

/** Streams the file through `fd` (no second open) to the tier; returns the verified SHA-256. */
export async function upload(fd: number, tier: Tier, key: string, size: number, st: BigIntStats, absPath: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  let seen = 0;
  const source = new FdSource(fd);
  const body = source.stream().pipe(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        seen += chunk.length;
        faultPoint('upload-chunk');
        cb(null, chunk);
      },
    }),
  );
  const meta = { sha256: '', size, path: absPath, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), mtimeMs: Number(st.mtimeMs) };
  let res;
  try {
    res = await tier.put(key, body, size, meta, signal);
    faultPoint('after-put');
  } finally {
    // The caller closes fd next: a read still in flight must not land on a reused fd number.
    body.destroy();
    await source.settle();
  }
  const sha = hash.digest('hex');
  if (seen !== size || res.size !== size) throw new Error(`tier ${tier.name}: put ${JSON.stringify(key)}: sent ${seen} bytes, stored ${res.size}, file has ${size}`);
  if (res.sha256 !== sha) throw new Error(`tier ${tier.name}: put ${JSON.stringify(key)}: checksum mismatch (tier ${res.sha256}, file ${sha})`);
  const info = await tier.stat(key, signal);
  if (!info || info.size !== size) throw new Error(`tier ${tier.name}: stat ${JSON.stringify(key)}: stored size ${info?.size ?? 'missing'}, expected ${size}`);
  if (info.meta?.sha256 && info.meta.sha256 !== sha) throw new Error(`tier ${tier.name}: stat ${JSON.stringify(key)}: stored checksum differs`);
  return sha;
}
