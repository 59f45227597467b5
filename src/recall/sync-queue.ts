// Completion syncs (one fdatasync per file made whole: handler.ts finishIfComplete), at
// most `limit` at once. Rules:
// - each sync holds a libuv threadpool thread (4 by default) for a journal commit, which
//   on a loop device is a flush of the backing file; unbounded, a tree of small files read
//   one after another queued one sync per file, took every thread, and the group read (on
//   the threadpool too: service.ts) waited behind them;
// - a queued sync someone waits for (an open of that file: it must see the final record)
//   starts at once, past the limit (`now`), so an open never waits for other files' syncs.
import { fdatasync } from 'node:fs';

export interface QueuedSync {
  done: Promise<void>;
  /** Starts the sync now if it is still queued. */
  now(): void;
}

export class SyncQueue {
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  sync(fd: number): QueuedSync {
    let start!: () => void;
    let started = false;
    const done = new Promise<void>((resolve, reject) => {
      start = () => {
        if (started) return;
        started = true;
        const at = this.queue.indexOf(start);
        if (at >= 0) this.queue.splice(at, 1);
        this.running++;
        fdatasync(fd, (err) => {
          this.running--;
          this.queue.shift()?.();
          if (err) reject(err);
          else resolve();
        });
      };
    });
    if (this.running < this.limit) start();
    else this.queue.push(start);
    return { done, now: () => start() };
  }
}
