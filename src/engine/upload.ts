// Uploading a file through an fd the engine already holds (under its lease; opened by
// openUnmarked, so no pread here can raise a pre-content event and wait on that lease): a pread
// stream that never closes the fd, SHA-256 on the way (whole file and per recall chunk),
// then verification against what the tier reports (put result; then stat size and stored
// checksum, unless the tier checked the stored bytes itself), then the per-chunk sums
// object `${key}.sums` (the recall service checks every chunk it fetches against it: a
// corrupt object gives EIO, never wrong bytes), two-level for a dense copy (chunks/sums-tree.ts:
// a reader fetches level 1 and only the blocks of leaves it needs); a small dense copy has
// none (record/state-record.ts sumsInRecord: it is checked whole against its SHA-256).
// The chunk is decided here, once the extents are known (copyChunkFor: a sparse copy keeps
// the earlier, larger unit and flat sums).
// A file with holes (SEEK_DATA/SEEK_HOLE through the same fd, extent-scan.ts) uploads only
// its data extents, packed, and its map heads the sums object (chunks/extent-map.ts); its chunk
// sums stay over the logical bytes (holes as zeros), for the chunks that touch data.
import { createHash } from 'node:crypto';
import { read, type BigIntStats } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { promisify } from 'node:util';
import type { Tier } from '../tiers/tier.js';
import { faultPoint } from './fault.js';
import { chunkCount, copyChunkFor, sumsInRecord, sumsKey } from '../record/state-record.js';
import { encodeTree } from '../chunks/sums-tree.js';
import { encodeMap, encodeSums, isDense, type Extent } from '../chunks/extent-map.js';
import { scanExtents } from './extent-scan.js';
import { flatSums } from '../chunks/sums-fetch.js';

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
    /** The file's size: buffers no larger than what is left (+1 to see EOF), so a small file allocates no 1 MiB buffer (GC: bench 7). */
    private readonly size = Infinity,
    private readonly chunk = 1 << 20,
  ) {}
  stream(): Readable {
    return Readable.from(this.gen(), { objectMode: false });
  }
  /** Only these extents, in order, each piece handed to `seen` with its logical offset first. */
  extents(list: readonly Extent[], seen: (at: number, b: Buffer) => void): Readable {
    return Readable.from(this.genExtents(list, seen), { objectMode: false });
  }
  private async *genExtents(list: readonly Extent[], seen: (at: number, b: Buffer) => void): AsyncGenerator<Buffer> {
    for (const e of list) {
      for (let pos = e.off; pos < e.off + e.len; ) {
        const buf = Buffer.allocUnsafe(Math.min(this.chunk, e.off + e.len - pos));
        const p = preadAsync(this.fd, buf, 0, buf.length, pos);
        this.inflight = p;
        const { bytesRead } = await p;
        this.inflight = null;
        if (bytesRead === 0) throw new Error(`file ended at ${pos} inside its data extent ${e.off}+${e.len}`);
        const b = buf.subarray(0, bytesRead);
        seen(pos, b);
        pos += bytesRead;
        yield b;
      }
    }
  }
  private async *gen(): AsyncGenerator<Buffer> {
    let pos = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(this.chunk, Math.max(4096, this.size - pos + 1)));
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

const ZEROS = Buffer.alloc(1 << 20);

/**
 * SHA-256 of every `chunk`-sized piece of the logical file that touches data, fed with
 * the data pieces in order (each with its offset); the holes between hash as zeros.
 * Chunks with no data get no sum (chunks/extent-map.ts dataChunks: the same chunks, in order).
 */
export class LogicalSums {
  private readonly sums: Buffer[] = [];
  private cur: ReturnType<typeof createHash> | null = null;
  private curChunk = -1;
  private pos = 0;
  constructor(
    private readonly chunk: number,
    private readonly size: number,
  ) {}
  private zeros(n: number): void {
    for (; n > 0; n -= ZEROS.length) this.cur!.update(n >= ZEROS.length ? ZEROS : ZEROS.subarray(0, n));
  }
  private finish(): void {
    if (!this.cur) return;
    this.zeros(Math.min(this.size, (this.curChunk + 1) * this.chunk) - this.pos);
    this.sums.push(this.cur.digest());
    this.cur = null;
  }
  update(at: number, b: Buffer): void {
    while (b.length > 0) {
      const c = Math.floor(at / this.chunk);
      if (c !== this.curChunk) {
        this.finish();
        this.cur = createHash('sha256');
        this.curChunk = c;
        this.pos = c * this.chunk;
      }
      this.zeros(at - this.pos);
      const n = Math.min(b.length, (c + 1) * this.chunk - at);
      this.cur!.update(b.subarray(0, n));
      at += n;
      this.pos = at;
      b = b.subarray(n);
    }
  }
  digest(): Buffer {
    this.finish();
    return Buffer.concat(this.sums);
  }
}

export interface Uploaded {
  sha256: string;
  /** The copy's chunk (copyChunkFor of the tier's chunk, dense or sparse). */
  chunk: number;
  /** The sums object is two-level (record copy.tree). */
  tree?: true;
  /** SHA-256 (hex) of the sums object, for the record. */
  sumsSha: string;
  /** Bytes stored (the packed data of a sparse file, else its size). */
  stored: number;
  /** A sparse file's copy: what the record keeps (state-record.ts copy.sparse). */
  sparse?: { stored: number; sumsLen: number };
}

type Meta = { path: string; mode: number; uid: number; gid: number; mtimeMs: number };

/** Streams the file through `fd` (no second open) to the tier, then its chunk sums; returns the verified checksums. */
export async function upload(fd: number, tier: Tier, key: string, size: number, tierChunk: number, st: BigIntStats, absPath: string, signal: AbortSignal): Promise<Uploaded> {
  const map = scanExtents(fd, size, absPath, signal);
  if (!isDense(map)) return uploadSparse(fd, tier, key, map, copyChunkFor(tierChunk, size, true), st, absPath, signal);
  const chunkSize = copyChunkFor(tierChunk, size);
  if (size <= SMALL_READ && sumsInRecord({ size, chunk: chunkSize })) return uploadSmall(fd, tier, key, size, chunkSize, st, absPath, signal);
  const hash = createHash('sha256');
  const sums = new ChunkSums(chunkSize);
  let seen = 0;
  const source = new FdSource(fd, size);
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
  // A tier that checked the stored bytes itself (tier.ts contentChecked) is not asked again.
  if (!res.contentChecked) {
    const info = await tier.stat(key, signal);
    if (!info || info.size !== size) throw new Error(`tier ${tier.name}: stat ${JSON.stringify(key)}: stored size ${info?.size ?? 'missing'}, expected ${size}`);
    if (info.meta?.sha256 && info.meta.sha256 !== sha) throw new Error(`tier ${tier.name}: stat ${JSON.stringify(key)}: stored checksum differs`);
  }
  const digest = sums.digest();
  // Small: checked whole by the record's `sha`, no sums object (state-record.ts sumsInRecord).
  if (sumsInRecord({ size, chunk: chunkSize })) return { sha256: sha, chunk: chunkSize, sumsSha: createHash('sha256').update(digest).digest('hex'), stored: size };
  const tree = encodeTree(digest);
  await putSums(tier, key, tree.obj, meta, signal);
  return { sha256: sha, chunk: chunkSize, tree: true, sumsSha: tree.sumsSha, stored: size };
}

/** A dense one-chunk file up to this size is read whole, in one pread (bench 7: 5,000 x 64 KiB). */
const SMALL_READ = 1024 * 1024;

/**
 * A small dense file checked whole (sumsInRecord): one pread of size + 1 bytes (the +1 sees EOF: a file
 * that grew is refused, as the stream's count would) into the buffer the put sends, one
 * SHA-256 (the file's, which is also its one chunk sum), no stream stages of our own. The
 * tier still hashes what it sends against that SHA-256 (meta.sha256: a put that streams
 * other bytes fails), and the checks after the put are upload()'s.
 */
async function uploadSmall(fd: number, tier: Tier, key: string, size: number, chunk: number, st: BigIntStats, absPath: string, signal: AbortSignal): Promise<Uploaded> {
  const buf = Buffer.allocUnsafe(size + 1);
  const { bytesRead } = await preadAsync(fd, buf, 0, size + 1, 0);
  if (bytesRead !== size) throw new Error(`${absPath}: read ${bytesRead} bytes, the file had ${size} when opened (changed: next run)`);
  faultPoint('upload-chunk');
  const data = buf.subarray(0, size);
  const digest = createHash('sha256').update(data).digest();
  const sha = digest.toString('hex');
  const meta = { sha256: sha, size, path: absPath, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), mtimeMs: Number(st.mtimeMs) };
  const res = await tier.put(key, Readable.from([data]), size, meta, signal);
  faultPoint('after-put');
  if (res.size !== size) throw new Error(`tier ${tier.name}: put ${JSON.stringify(key)}: sent ${size} bytes, stored ${res.size}`);
  if (res.sha256 !== sha) throw new Error(`tier ${tier.name}: put ${JSON.stringify(key)}: checksum mismatch (tier ${res.sha256}, file ${sha})`);
  if (!res.contentChecked) {
    const info = await tier.stat(key, signal);
    if (!info || info.size !== size) throw new Error(`tier ${tier.name}: stat ${JSON.stringify(key)}: stored size ${info?.size ?? 'missing'}, expected ${size}`);
    if (info.meta?.sha256 && info.meta.sha256 !== sha) throw new Error(`tier ${tier.name}: stat ${JSON.stringify(key)}: stored checksum differs`);
  }
  // No sums object: the record keeps the SHA-256 of the flat chunk sums (one chunk: of `sha`).
  const flat = chunkCount(size, chunk) === 1 ? digest : flatSums(data, chunk);
  return { sha256: sha, chunk, sumsSha: createHash('sha256').update(flat).digest('hex'), stored: size };
}

/**
 * A file with holes: only its data extents go to the tier, packed in order. The record's
 * `sha256` is the content digest SHA-256(map ‖ packed data), so a later hash of the file
 * (verify-copy.ts) sees a changed layout as a changed file; the object's own metadata
 * describes what was stored (its size and SHA-256).
 */
async function uploadSparse(fd: number, tier: Tier, key: string, map: ReturnType<typeof scanExtents>, chunkSize: number, st: BigIntStats, absPath: string, signal: AbortSignal): Promise<Uploaded> {
  const packed = createHash('sha256');
  const content = createHash('sha256').update(encodeMap(map));
  const sums = new LogicalSums(chunkSize, map.size);
  let seen = 0;
  const source = new FdSource(fd);
  const body = source.extents(map.extents, (at, b) => {
    packed.update(b);
    content.update(b);
    sums.update(at, b);
    seen += b.length;
    faultPoint('upload-chunk');
  });
  const meta = { sha256: '', size: map.stored, path: absPath, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), mtimeMs: Number(st.mtimeMs) };
  let res;
  try {
    res = await tier.put(key, body, map.stored, meta, signal);
    faultPoint('after-put');
  } finally {
    body.destroy();
    await source.settle();
  }
  const sha = packed.digest('hex');
  const what = `tier ${tier.name}: put ${JSON.stringify(key)}`;
  if (seen !== map.stored || res.size !== map.stored) throw new Error(`${what}: sent ${seen} bytes, stored ${res.size}, data extents hold ${map.stored}`);
  if (res.sha256 !== sha) throw new Error(`${what}: checksum mismatch (tier ${res.sha256}, data ${sha})`);
  const info = await tier.stat(key, signal);
  if (!info || info.size !== map.stored) throw new Error(`tier ${tier.name}: stat ${JSON.stringify(key)}: stored size ${info?.size ?? 'missing'}, expected ${map.stored}`);
  if (info.meta?.sha256 && info.meta.sha256 !== sha) throw new Error(`tier ${tier.name}: stat ${JSON.stringify(key)}: stored checksum differs`);
  const obj = encodeSums(map, sums.digest());
  const sumsSha = await putSums(tier, key, obj, meta, signal);
  return { sha256: content.digest('hex'), chunk: chunkSize, sumsSha, stored: map.stored, sparse: { stored: map.stored, sumsLen: obj.length } };
}

/** Writes `${key}.sums` after its data object (before the record); returns its verified SHA-256. */
async function putSums(tier: Tier, key: string, sums: Buffer, meta: Meta, signal: AbortSignal): Promise<string> {
  const skey = sumsKey(key);
  const sha = createHash('sha256').update(sums).digest('hex');
  const res = await tier.put(skey, Readable.from([sums]), sums.length, { ...meta, sha256: sha, size: sums.length }, signal);
  faultPoint('after-put-sums');
  if (res.size !== sums.length || res.sha256 !== sha) throw new Error(`tier ${tier.name}: put ${JSON.stringify(skey)}: stored ${res.size} bytes with SHA-256 ${res.sha256}, sent ${sums.length} with ${sha}`);
  return sha;
}
