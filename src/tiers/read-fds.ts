// Read fds of local objects, kept open for a moment: a sequential recall GETs the same
// object hundreds of times (a run of a few MiB each), and an open, fstat and close per GET
// cost the event loop more than the read (measured: bench 2, docs/recall.md).
//
// Rules:
// - Only for objects that never change under their key (a copy's key is new per archive:
//   engine/migrate-file.ts); a conditional read (an imported object) opens its own.
// - An fd is closed once idle for `idleMs`, or at once when its key is deleted (evict),
//   never while a read uses it; at most `max` are kept (the idlest closed first).
import { close, fstat, open, read } from 'node:fs';

interface Entry {
  ready: Promise<{ fd: number; size: number }>;
  users: number;
  last: number;
  doomed: boolean;
}

const openP = (path: string): Promise<number> => new Promise((res, rej) => open(path, 'r', (e, fd) => (e ? rej(e) : res(fd))));
const sizeP = (fd: number): Promise<number> => new Promise((res, rej) => fstat(fd, (e, st) => (e ? rej(e) : res(st.size))));
const closeQuiet = (fd: number): void => close(fd, () => {});

/** Up to `length` bytes at `offset` of `fd` into `dst` from its start (fewer at EOF): the count. */
export function readFdInto(fd: number, dst: Buffer, offset: number, length: number): Promise<number> {
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

export class ReadFds {
  private readonly fds = new Map<string, Entry>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly idleMs = 2000,
    private readonly max = 32,
  ) {}

  /** Runs `f` with an open read fd of `path` and its size. */
  async use<T>(path: string, f: (fd: number, size: number) => Promise<T>): Promise<T> {
    let e = this.fds.get(path);
    if (!e) {
      const ready = openP(path).then(async (fd) => {
        try {
          return { fd, size: await sizeP(fd) };
        } catch (err) {
          closeQuiet(fd);
          throw err;
        }
      });
      e = { ready, users: 0, last: Date.now(), doomed: false };
      this.fds.set(path, e);
      const mine = e;
      ready.catch(() => this.fds.get(path) === mine && this.fds.delete(path));
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

  /** The object at `path` is gone or replaced: its fd is closed once no read uses it. */
  evict(path: string): void {
    const e = this.fds.get(path);
    if (!e) return;
    this.fds.delete(path);
    e.doomed = true;
    this.settle(e);
  }

  /** Closes every idle fd (and the rest as their reads end). */
  closeAll(): void {
    for (const path of [...this.fds.keys()]) this.evict(path);
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
    for (const [path, e] of this.fds) if (e.users === 0 && now - e.last >= this.idleMs) this.evict(path);
    if (this.fds.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private trim(): void {
    if (this.fds.size <= this.max) return;
    const idle = [...this.fds].filter(([, e]) => e.users === 0).sort((a, b) => a[1].last - b[1].last);
    for (const [path] of idle.slice(0, this.fds.size - this.max)) this.evict(path);
  }
}
