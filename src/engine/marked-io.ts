// A cap on the engine's blocking I/O on files that may carry our mark (opens and reads of
// released, partial or written-after-release files) in the daemon's worker.
//
// Why (measured, test/reliability/lease-stall.test.ts): such an open or read waits on a
// libuv threadpool thread until our own recall service answers its event, and the service
// needs the threadpool too (its group read, local-tier reads, fdatasync). An apply that
// opened 8 written-after-release files with 4 actions at a time hung for good: all 4
// threads in open() (fanotify_handle_event from do_dentry_open, D state), the group read
// queued behind them, the main thread idle. So at most poolSize - 2 such operations run
// at once: two threads always remain for the service.
const POOL = Number(process.env.UV_THREADPOOL_SIZE) || 4;
export const MARKED_IO_SLOTS = Math.max(1, POOL - 2);

let free = MARKED_IO_SLOTS;
const waiters: (() => void)[] = [];

/** Runs f when a slot is free; the slot is held until f settles. */
export async function withMarkedIo<T>(f: () => Promise<T>): Promise<T> {
  if (free > 0) free--;
  else await new Promise<void>((r) => waiters.push(r));
  try {
    return await f();
  } finally {
    const next = waiters.shift();
    if (next) next();
    else free++;
  }
}
