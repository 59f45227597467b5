// Group commit of the catalog rows that the migrations in flight write (migrate-file.ts:
// catalog ahead, and the final row with its ctime): the rows queued during one turn of the
// event loop land in one SQLite transaction, and each writer's promise settles once its row
// is committed, so "the catalog lists the file before its record says released" holds as
// with one transaction per row (a kill loses no committed row: WAL). One commit per file
// pair was ~10% of the daemon's CPU releasing 64 KiB files (bench 7).
// A failed batch is retried one row at a time, so one bad row fails only its own file.
import type { Catalog, CatalogRow } from './catalog.js';

interface Pending {
  row: CatalogRow;
  ctimeNs: string | undefined;
  done: (e?: unknown) => void;
}

class CatalogBatch {
  private queue: Pending[] = [];

  constructor(private readonly catalog: Catalog) {}

  upsert(row: CatalogRow, ctimeNs?: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(() => this.flush());
      this.queue.push({ row, ctimeNs, done: (e) => (e === undefined ? resolve() : reject(e)) });
    });
  }

  private flush(): void {
    const q = this.queue;
    this.queue = [];
    try {
      this.catalog.batch(() => {
        for (const p of q) this.catalog.upsert(p.row, p.ctimeNs);
      });
    } catch {
      for (const p of q) {
        try {
          this.catalog.upsert(p.row, p.ctimeNs);
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

const batches = new WeakMap<Catalog, CatalogBatch>();

/** Upserts `row` (and its ctime) in the next group commit; resolves once it is committed. */
export function upsertBatched(catalog: Catalog, row: CatalogRow, ctimeNs?: string): Promise<void> {
  let b = batches.get(catalog);
  if (!b) batches.set(catalog, (b = new CatalogBatch(catalog)));
  return b.upsert(row, ctimeNs);
}
