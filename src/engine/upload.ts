// Uploading a file through an fd the engine already holds (under its lease; opened by
// openUnmarked, so no pread here can raise a pre-content event and wait on that lease): a pread
// stream that never closes the fd, SHA-256 on the way (whole file and per recall chunk),
// then verification against what the tier reports (put result, stat size, stored
// checksum), then the per-chunk sums object `${key}.sums` (the recall service checks
// every chunk it fetches against it: a corrupt object gives EIO, never wrong bytes).
import { createHash } from 'node:crypto';
import { read, type BigIntStats } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { promisify } from 'node:util';
import type { Tier } from '../tiers/tier.js';
import { faultPoint } from './fault.js';
import { sumsKey } from './state-record.js';

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

/** SHA-256 of every `chunk`-sized piece of a stream (the last one covers its real length). */
export class ChunkSums {
  private readonly sums: Buffer[] = [];
  private cur = createHash('sha256');
  private filled = 0;
  constructor(private readonly chunk: number) {}
  update(b: Buffer): void {
    for (let off = 0; off < b.length; ) {
      const n = Math.min(b.length - off, this.chunk - this.filled);
      this.cur.update(b.subarray(off, off + n));
      off += n;
      this.filled += n;
      if (this.filled === this.chunk) this.cut();
    }
  }
  private cut(): void {
    this.sums.push(this.cur.digest());
    this.cur = createHash('sha256');
    this.filled = 0;
  }
  /** 32 bytes per chunk, in order. */
  digest(): Buffer {
    if (this.filled > 0) this.cut();
    return Buffer.concat(this.sums);
  }
}

export interface Uploaded {
  sha256: string;
  /** SHA-256 (hex) of the sums object, for the record. */
  sumsSha: string;
}

/** Streams the file through `fd` (no second open) to the tier, then its chunk sums; returns the verified checksums. */
export async function upload(fd: number, tier: Tier, key: string, size: number, chunkSize: number, st: BigIntStats, absPath: string, signal: AbortSignal): Promise<Uploaded> {
  const hash = createHash('sha256');
  const sums = new ChunkSums(chunkSize);
  let seen = 0;
  const source = new FdSource(fd);
  const body = source.stream().pipe(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        sums.update(chunk);
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
  return { sha256: sha, sumsSha: await putSums(tier, key, sums.digest(), meta, signal) };
}

/** Writes `${key}.sums` after its data object (before the record); returns its verified SHA-256. */
async function putSums(tier: Tier, key: string, sums: Buffer, meta: { path: string; mode: number; uid: number; gid: number; mtimeMs: number }, signal: AbortSignal): Promise<string> {
  const skey = sumsKey(key);
  const sha = createHash('sha256').update(sums).digest('hex');
  const res = await tier.put(skey, Readable.from([sums]), sums.length, { ...meta, sha256: sha, size: sums.length }, signal);
  faultPoint('after-put-sums');
  if (res.size !== sums.length || res.sha256 !== sha) throw new Error(`tier ${tier.name}: put ${JSON.stringify(skey)}: stored ${res.size} bytes with SHA-256 ${res.sha256}, sent ${sums.length} with ${sha}`);
  return sha;
}
