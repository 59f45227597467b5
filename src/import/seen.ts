// The keys one `tier import` run listed, kept in the catalog's database (table
// import_seen), not in memory, so that a run over 100k objects or 10M stays at flat
// memory; the files whose object vanished are then the catalog's live imported rows of
// the tier under DIR with no seen row for the run, read a page at a time.
//
// Rules:
// - Each run has its own id (start time in ms * 1000 + a counter): concurrent runs of the
//   same tier (other directories) never see each other's keys.
// - Keys are written in batches (one transaction per BATCH); at most BATCH keys and one
//   page of rows are held in memory.
// - A run's rows are removed when it ends, whatever happened; rows a killed daemon left
//   are removed by the next run (the daemon is the one process that imports: any run
//   id it is not running now is stale).
import type Database from 'better-sqlite3';

const BATCH = 1000;
const PAGE = 500;

const SCHEMA = `CREATE TABLE IF NOT EXISTS import_seen (
  run INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (run, key)
) WITHOUT ROWID`;

let counter = 0;
const active = new Set<number>();

/** An imported file's row whose key the run did not list. */
export interface Unseen {
  path: string;
  key: string;
}

export class SeenKeys {
  readonly run: number;
  private pending: string[] = [];
  private readonly insert: Database.Statement;
  private readonly flushTx: (keys: string[]) => void;

  constructor(
    private readonly db: Database.Database,
    now: number,
  ) {
    db.exec(SCHEMA);
    db.prepare('DELETE FROM import_seen WHERE run NOT IN (SELECT value FROM json_each(?))').run(JSON.stringify([...active]));
    this.run = now * 1000 + (counter++ % 1000);
    active.add(this.run);
    this.insert = db.prepare('INSERT OR IGNORE INTO import_seen (run, key) VALUES (?, ?)');
    this.flushTx = db.transaction((keys: string[]) => {
      for (const k of keys) this.insert.run(this.run, k);
    });
  }

  add(key: string): void {
    this.pending.push(key);
    if (this.pending.length >= BATCH) this.flush();
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const keys = this.pending;
    this.pending = [];
    this.flushTx(keys);
  }

  /**
   * Live imported rows of `tier` under `dir/` whose key starts with `prefix` and was not
   * listed, in key order, a page at a time (the caller may delete rows between pages).
   */
  *unseen(tier: string, dir: string, prefix: string): Generator<Unseen> {
    this.flush();
    const d = dir.replace(/\/+$/, '') + '/';
    const page = this.db.prepare(
      `SELECT rowid AS rid, path, key FROM files f INDEXED BY files_key
       WHERE f.tier = @tier AND f.key >= @prefix AND substr(f.key, 1, length(@prefix)) = @prefix
         AND (f.key > @after OR (f.key = @after AND f.rowid > @rid))
         AND substr(f.path, 1, length(@d)) = @d AND f.deleted_at IS NULL AND f.foreign_copy = 1
         AND NOT EXISTS (SELECT 1 FROM import_seen s WHERE s.run = @run AND s.key = f.key)
       ORDER BY f.key, f.rowid LIMIT ${PAGE}`,
    );
    let after = '';
    let rid = -1;
    for (;;) {
      const rows = page.all({ tier, prefix, after, rid, d, run: this.run }) as { rid: number; path: string; key: string }[];
      for (const r of rows) yield { path: r.path, key: r.key };
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]!.key;
      rid = rows[rows.length - 1]!.rid;
    }
  }

  /** Removes the run's rows (its end, whatever happened). */
  close(): void {
    this.pending = [];
    active.delete(this.run);
    this.db.prepare('DELETE FROM import_seen WHERE run = ?').run(this.run);
  }
}
