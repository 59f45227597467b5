// File helpers for the local tier: durable writes (restic local.Save style: temp file in
// the same directory, fsync, rename, fsync the directory), directory walks, and the read
// fds a recall keeps (ReadFds, below).
import { randomBytes } from 'node:crypto';
import { close, constants, fstat, open as openCb, read } from 'node:fs';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TEMP_PREFIX } from './keys.js';

export function tempNameBeside(path: string): string {
  return join(dirname(path), `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `path` atomically; the caller fsyncs the directory (once, for several renames). */
export async function writeFileAtomicNoDirSync(path: string, data: string | Buffer): Promise<void> {
  const tmp = tempNameBeside(path);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** Reads up to `length` bytes at `offset` of `fd`; stops early only at end of file. */
export async function preadFull(fd: number, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const got = await preadInto(fd, buf, offset, length);
  return got === length ? buf : buf.subarray(0, got);
}

/** Up to `length` bytes at `offset` of `fd` into `dst` from its start (fewer at EOF): the count. */
export function preadInto(fd: number, dst: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((res, rej) => {
    let got = 0;
    const step = (): void =>
      read(fd, dst, got, length - got, offset + got, (e, n) => {
        if (e) return rej(e);
        got += n;
        if (n === 0 || got >= length) res(got);
        else step();
      });
    if (length <= 0) res(0);
    else step();
  });
}

export interface WalkEntry {
  rel: string; // '/'-separated path relative to the walk root
  abs: string;
  isTemp: boolean;
}

/** Depth-first, names sorted so listings are stable; yields files only. */
export async function* walkFiles(root: string, startRel = ''): AsyncGenerator<WalkEntry> {
  const abs = startRel ? join(root, startRel) : root;
  let ents;
  try {
    ents = await readdir(abs, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return; // vanished or never existed
    throw e;
  }
  ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const ent of ents) {
    const rel = startRel ? `${startRel}/${ent.name}` : ent.name;
    if (ent.isDirectory()) yield* walkFiles(root, rel);
    else if (ent.isFile()) yield { rel, abs: join(root, rel), isTemp: ent.name.startsWith(TEMP_PREFIX) };
  }
}

// Read fds of local objects, kept open for a moment: a sequential recall GETs the same
// object hundreds of times (a run of a few MiB each), and an open, fstat and close per GET
// cost the event loop more than the read (measured: bench 2, docs/recall.md).
//
// Rules:
// - Only for objects that never change under their key (a copy's key is new per archive:
//   engine/migrate-file.ts); a conditional read (an imported object) opens its own.
// - An fd is closed once idle for `idleMs`, or at once when its key is deleted (evict),
//   never while a read uses it; at most `max` are kept (the idlest closed first).

interface Entry {
  ready: Promise<{ fd: number; size: number }>;
  users: number;
  last: number;
  doomed: boolean;
}

const openP = (path: string, direct: boolean): Promise<number> =>
  new Promise((res, rej) => openCb(path, direct ? constants.O_RDONLY | constants.O_DIRECT : 'r', (e, fd) => (e ? rej(e) : res(fd))));
const sizeP = (fd: number): Promise<number> => new Promise((res, rej) => fstat(fd, (e, st) => (e ? rej(e) : res(st.size))));
const closeQuiet = (fd: number): void => close(fd, () => {});

export class ReadFds {
  private readonly fds = new Map<string, Entry>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly idleMs = 2000,
    private readonly max = 32,
  ) {}

  /** Runs `f` with an open read fd of `path` and its size; `direct`: one opened O_DIRECT. */
  async use<T>(path: string, f: (fd: number, size: number) => Promise<T>, direct = false): Promise<T> {
    const key = direct ? `${path}\0direct` : path;
    let e = this.fds.get(key);
    if (!e) {
      const ready = openP(path, direct).then(async (fd) => {
        try {
          return { fd, size: await sizeP(fd) };
        } catch (err) {
          closeQuiet(fd);
          throw err;
        }
      });
      e = { ready, users: 0, last: Date.now(), doomed: false };
      this.fds.set(key, e);
      const mine = e;
      ready.catch(() => this.fds.get(key) === mine && this.fds.delete(key));
      this.trim();
    }
    e.users++;
    try {
      const { fd, size } = await e.ready;
      return await f(fd, size);
    } finally {
      e.users--;
      e.last = Date.now();
      this.settle(e);
    }
  }

  /** The object at `path` is gone or replaced: its fds are closed once no read uses them. */
  evict(path: string): void {
    this.drop(path);
    this.drop(`${path}\0direct`);
  }

  private drop(path: string): void {
    const e = this.fds.get(path);
    if (!e) return;
    this.fds.delete(path);
    e.doomed = true;
    this.settle(e);
  }

  /** Closes every idle fd (and the rest as their reads end). */
  closeAll(): void {
    for (const path of [...this.fds.keys()]) this.drop(path);
  }

  private settle(e: Entry): void {
    if (e.users > 0) return;
    if (e.doomed) {
      e.ready.then(({ fd }) => closeQuiet(fd), () => {});
      return;
    }
    this.timer ??= setInterval(() => this.sweep(), this.idleMs).unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [path, e] of this.fds) if (e.users === 0 && now - e.last >= this.idleMs) this.drop(path);
    if (this.fds.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private trim(): void {
    if (this.fds.size <= this.max) return;
    const idle = [...this.fds].filter(([, e]) => e.users === 0).sort((a, b) => a[1].last - b[1].last);
    for (const [path] of idle.slice(0, this.fds.size - this.max)) this.drop(path);
  }
}
