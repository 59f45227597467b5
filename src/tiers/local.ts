// Local-directory tier (a slower disk, an NFS mount, the demo's default).
// Layout: object `a/b` is the plain file DIR/a/b (restorable with cp), its ObjectMeta the
// sidecar DIR/a/b.meta.json. put(): data and sidecar each go to a `.tmp-*` name in the
// same directory, are fsynced, renamed (sidecar first, then data), and the directory is
// fsynced. The sidecar records the data file's inode, so a crash between the two renames
// (new sidecar, old data) is detected and the stale sidecar ignored; data is never partial.
import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { addAbortSignal, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TierTuning } from '../dsl/ast.js';
import { addressAligned } from '../kernel/libc.js';
import { expectedSha, HashCheck } from './hash-stream.js';
import { checkKey, checkPrefix, META_SUFFIX } from './keys.js';
import { parseValidator, validatorOf } from './validator.js';
import { fsyncDir, preadFull, preadInto, ReadFds, tempNameBeside, walkFiles, writeFileAtomicNoDirSync } from './local-fs.js';

import {
  TierError,
  type ByteRange,
  type ObjectInfo,
  type ObjectMeta,
  type PutResult,
  type Tier,
  type TierErrorCode,
} from './tier.js';

/** O_DIRECT's alignment of offset, length and memory (4096 covers every block size up to it). */
const DIO_ALIGN = 4096;
/** An O_DIRECT read that would end past EOF (the object's tail): read it buffered. */
class ShortTail extends Error {}

const DEFAULT_SWEEP_AGE_MS = 60 * 60 * 1000;

interface Sidecar extends ObjectMeta {
  ino: number;
}

export class LocalTier implements Tier {
  readonly kind = 'local' as const;
  /** O_DIRECT until the directory's filesystem refuses it (EINVAL). */
  private direct = true;
  /** Recall's ranged reads of one object reuse its fd (local-fs.ts ReadFds). */
  private readonly fds = new ReadFds();

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly tuning?: TierTuning,
  ) {}

  async put(key: string, body: Readable, size: number, meta: ObjectMeta, signal?: AbortSignal): Promise<PutResult> {
    const path = this.path('put', key);
    let tmp: string | undefined;
    try {
      signal?.throwIfAborted();
      await mkdir(dirname(path), { recursive: true });
      tmp = tempNameBeside(path);
      const check = new HashCheck({ tier: this.name, key, size, sha256: expectedSha(meta.sha256) });
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
      await pipeline(body, check, out, signal ? { signal } : {});
      const fh = await open(tmp, 'r'); // fsync through any descriptor flushes the file
      try {
        await fh.sync();
        const st = await fh.stat();
        if (st.size !== size) throw new TierError('ShortObject', 'put', this.name, key, `wrote ${st.size} of ${size} bytes`);
        const side: Sidecar = { ...meta, sha256: check.sha256, size, ino: st.ino };
        await writeFileAtomicNoDirSync(path + META_SUFFIX, JSON.stringify(side));
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      this.fds.evict(path); // a put over a key (a retried upload) replaces its inode
      tmp = undefined;
      await fsyncDir(dirname(path));
      return { sha256: check.sha256, size };
    } catch (e) {
      if (tmp) await unlink(tmp).catch(() => {});
      throw this.mapErr(e, 'put', key, signal);
    }
  }

  async get(key: string, range?: ByteRange, signal?: AbortSignal, expect?: string): Promise<Buffer> {
    const offset = range?.offset ?? 0;
    const lengthOf = (size: number) => Math.max(0, Math.min(range ? range.length : size, size - offset));
    // A conditional read (an imported object, which may change) checks the object each time.
    if (expect !== undefined) return this.reading(key, signal, expect, (fh, size) => preadFull(fh.fd, offset, lengthOf(size)));
    return this.kept(key, signal, (fd, size) => preadFull(fd, offset, lengthOf(size)));
  }

  async getInto(key: string, range: ByteRange, dst: Buffer, signal?: AbortSignal, expect?: string): Promise<number> {
    const lengthOf = (size: number) => Math.max(0, Math.min(range.length, dst.length, size - range.offset));
    if (expect !== undefined) return this.reading(key, signal, expect, (fh, size) => preadInto(fh.fd, dst, range.offset, lengthOf(size)));
    // Whole aligned blocks into an aligned buffer (a recall's run): O_DIRECT, the disk's DMA
    // straight into it, no copy through the page cache.
    if (this.direct && range.offset % DIO_ALIGN === 0 && range.length % DIO_ALIGN === 0 && range.length <= dst.length && addressAligned(dst, DIO_ALIGN)) {
      try {
        return await this.kept(key, signal, (fd, size) => (size - range.offset >= range.length ? preadInto(fd, dst, range.offset, range.length) : Promise.reject(new ShortTail())), true);
      } catch (e) {
        const why = e instanceof TierError ? e.cause : e;
        if ((why as NodeJS.ErrnoException)?.code === 'EINVAL') this.direct = false; // this directory's filesystem refuses O_DIRECT
        else if (!(why instanceof ShortTail)) throw e;
      }
    }
    return this.kept(key, signal, (fd, size) => preadInto(fd, dst, range.offset, lengthOf(size)));
  }

  /** An unconditional read through the object's kept fd (local-fs.ts ReadFds). */
  private async kept<T>(key: string, signal: AbortSignal | undefined, read: (fd: number, size: number) => Promise<T>, direct = false): Promise<T> {
    const path = this.path('get', key);
    try {
      signal?.throwIfAborted();
      const out = await this.fds.use(path, read, direct);
      signal?.throwIfAborted();
      return out;
    } catch (e) {
      throw this.mapErr(e, 'get', key, signal);
    }
  }

  /** Opens the object, checks it (expect) before and after `read`, closes it. */
  private async reading<T>(key: string, signal: AbortSignal | undefined, expect: string | undefined, read: (fh: FileHandle, size: number) => Promise<T>): Promise<T> {
    const path = this.path('get', key);
    try {
      signal?.throwIfAborted();
      const fh = await open(path, 'r');
      try {
        const st = await fh.stat();
        this.checkUnchanged(key, expect, st);
        const buf = await read(fh, st.size);
        // A writer that replaced the content in place while we read changed mtime: check again
        // (a conditional read only: one threadpool trip less per recall GET otherwise).
        if (expect !== undefined) this.checkUnchanged(key, expect, await fh.stat());
        signal?.throwIfAborted();
        return buf;
      } finally {
        await fh.close();
      }
    } catch (e) {
      throw this.mapErr(e, 'get', key, signal);
    }
  }

  async getStream(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const path = this.path('get', key);
    try {
      signal?.throwIfAborted();
      const fh = await open(path, 'r'); // open now so a missing key fails here, not mid-stream
      if (range && range.length <= 0) {
        await fh.close();
        return Readable.from([]);
      }
      const opts = range ? { start: range.offset, end: range.offset + range.length - 1 } : {};
      const s = fh.createReadStream(opts);
      s.on('error', () => {}); // consumers see errors via pipeline/for-await; an unread stream must not crash the daemon
      return signal ? addAbortSignal(signal, s) : s;
    } catch (e) {
      throw this.mapErr(e, 'get', key, signal);
    }
  }

  async stat(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    const path = this.path('stat', key);
    try {
      signal?.throwIfAborted();
      const st = await stat(path);
      const info: ObjectInfo = { key, size: st.size, lastModified: st.mtime };
      const side = await readSidecar(path + META_SUFFIX);
      if (side && side.ino === st.ino && side.size === st.size) {
        const { ino: _ino, ...meta } = side;
        info.meta = meta;
      }
      return info;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw this.mapErr(e, 'stat', key, signal);
    }
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    const path = this.path('delete', key);
    try {
      signal?.throwIfAborted();
      this.fds.evict(path);
      await unlinkIfPresent(path);
      await unlinkIfPresent(path + META_SUFFIX);
    } catch (e) {
      throw this.mapErr(e, 'delete', key, signal);
    }
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    checkPrefix(this.name, prefix);
    // Start the walk at the deepest directory the prefix names in full.
    const cut = prefix.lastIndexOf('/');
    const startRel = cut > 0 ? prefix.slice(0, cut) : '';
    try {
      for await (const ent of walkFiles(this.dir, startRel)) {
        signal?.throwIfAborted();
        if (ent.isTemp || ent.rel.endsWith(META_SUFFIX) || !ent.rel.startsWith(prefix)) continue;
        let st;
        try {
          st = await stat(ent.abs);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted while listing
          throw e;
        }
        yield { key: ent.rel, size: st.size, lastModified: st.mtime };
      }
    } catch (e) {
      throw this.mapErr(e, 'list', prefix, signal);
    }
  }

  /** Removes `.tmp-*` files left by interrupted puts (crash, kill) older than maxAgeMs. */
  async sweepTemp(maxAgeMs = DEFAULT_SWEEP_AGE_MS, signal?: AbortSignal): Promise<number> {
    let n = 0;
    const cutoff = Date.now() - maxAgeMs;
    try {
      for await (const ent of walkFiles(this.dir)) {
        signal?.throwIfAborted();
        if (!ent.isTemp) continue;
        const st = await stat(ent.abs).catch(() => undefined);
        if (st && st.mtimeMs < cutoff && (await unlinkIfPresent(ent.abs))) n++;
      }
    } catch (e) {
      throw this.mapErr(e, 'sweep', '', signal);
    }
    return n;
  }

  async close(): Promise<void> {}

  /** A conditional get (validator `lm:<ms>` with the size, src/tiers/validator.ts): 'Changed' when the file differs. */
  private checkUnchanged(key: string, expect: string | undefined, st: { size: number; mtime: Date }): void {
    if (expect === undefined) return;
    const now = { size: st.size, lastModified: st.mtime };
    const v = parseValidator(expect);
    // The size is checked by recall against the record; here mtime (the local tier's only validator).
    if (v?.kind === 'lm' && Math.floor(st.mtime.getTime()) === v.ms) return;
    throw new TierError('Changed', 'get', this.name, key, `object changed since import: expected ${expect}, now ${validatorOf(now)} (${st.size} bytes)`);
  }

  private path(op: string, key: string): string {
    checkKey(this.name, op, key);
    return join(this.dir, key);
  }

  private mapErr(e: unknown, op: string, key: string, signal?: AbortSignal): TierError {
    if (e instanceof TierError) return e;
    if (signal?.aborted || (e as Error)?.name === 'AbortError') {
      return new TierError('Aborted', op, this.name, key, 'aborted by caller', { cause: e });
    }
    const code = (e as NodeJS.ErrnoException)?.code;
    const map: Record<string, TierErrorCode> = { ENOENT: 'NotFound', EACCES: 'AccessDenied', EPERM: 'AccessDenied' };
    const tc: TierErrorCode = (code && map[code]) || 'Io';
    const detail = tc === 'NotFound' ? `no such object in ${this.dir}` : `${(e as Error)?.message ?? String(e)}`;
    return new TierError(tc, op, this.name, key, detail, { cause: e });
  }
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Sidecar;
  } catch {
    return undefined; // missing or torn (cannot be torn: written atomically) -> no meta
  }
}

async function unlinkIfPresent(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
