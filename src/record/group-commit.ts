// Group commit: the items queued during one turn of the event loop are written by one call
// of `batch` (one SQLite transaction), and each adder's promise settles once its item is
// committed, so a caller that awaits it has the same "written before I go on" it had with
// one transaction per item (a kill loses no committed row: WAL). A failed batch is retried
// one item at a time, so one bad item fails only its own caller. Used by the catalog for
// the rows of the migrations in flight (engine/catalog.ts upsertGrouped).
interface Pending<T> {
  item: T;
  done: (e?: unknown) => void;
}

export class GroupCommit<T> {
  private queue: Pending<T>[] = [];

  constructor(
    private readonly batch: (items: T[]) => void,
    private readonly one: (item: T) => void,
  ) {}

  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(() => this.flush());
      this.queue.push({ item, done: (e) => (e === undefined ? resolve() : reject(e)) });
    });
  }

  private flush(): void {
    const q = this.queue;
    this.queue = [];
    try {
      this.batch(q.map((p) => p.item));
    } catch {
      for (const p of q) {
        try {
          this.one(p.item);
          p.done();
        } catch (e) {
          p.done(e);
        }
      }
      return;
    }
    for (const p of q) p.done();
  }
}
