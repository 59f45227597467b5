// The recall log: one row per recall event that fetched data or failed, in its own
// SQLite file (STATE_DIR/recall-log.db, WAL) apart from the engine's catalog. It feeds
// the anti-thrash cool-down (do not release what was just recalled) and `tier report`.
//
// The recall handler is the hot path: record() only appends to memory; rows reach disk
// in one transaction per flush (every FLUSH_MS, at FLUSH_ROWS, before any query, and on
// close). A crash loses at most the last flush interval of log rows, never file data.
import type Database from 'better-sqlite3';
import { openSqlite } from '../record/sqlite.js';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface RecallEntry {
  time: number; // ms since epoch
  path: string;
  dev?: number;
  ino?: number;
  bytes: number;
  latencyMs: number;
  comm?: string;
  pid?: number;
  /** Error kind or message when the recall failed; absent when it succeeded. */
  error?: string;
}

export interface TopRecalled {
  path: string;
  recalls: number;
  bytes: number;
  lastAt: number;
}

/** One time bucket of the recall log (all events, failed ones included in the latency). */
export interface RecallBucketRow {
  at: number; // bucket start, ms since epoch
  recalls: number;
  errors: number;
  bytes: number;
  latencyAvgMs: number;
  latencyMaxMs: number;
}

export interface RecallTotals {
  recalls: number;
  bytes: number;
  errors: number;
  files: number;
}

/** A file as planning knows it; either key is enough (path survives a copy, ino a rename). */
export type FileKey = { path?: string; dev?: number; ino?: number };

const SCHEMA = `
CREATE TABLE IF NOT EXISTS recalls (
  id INTEGER PRIMARY KEY, at INTEGER NOT NULL, path TEXT NOT NULL, dev INTEGER, ino INTEGER,
  bytes INTEGER NOT NULL, latency_ms REAL NOT NULL, comm TEXT, pid INTEGER, error TEXT
);
CREATE INDEX IF NOT EXISTS recalls_path ON recalls(path, at);
CREATE INDEX IF NOT EXISTS recalls_inode ON recalls(dev, ino, at);
CREATE INDEX IF NOT EXISTS recalls_at ON recalls(at);`;

export const RECALL_LOG_FILE = 'recall-log.db';
const FLUSH_MS = 1000;
const FLUSH_ROWS = 256;

export class RecallLog {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private buffer: RecallEntry[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly file: string) {
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      this.db = openSqlite(file);
      this.db.pragma('busy_timeout = 5000');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(SCHEMA);
    } catch (e) {
      throw new Error(`recall log ${file}: ${(e as Error).message}`, { cause: e });
    }
    this.insert = this.db.prepare(
      `INSERT INTO recalls (at, path, dev, ino, bytes, latency_ms, comm, pid, error)
       VALUES (@time, @path, @dev, @ino, @bytes, @latencyMs, @comm, @pid, @error)`,
    );
  }

  /** Appends one entry (buffered; cheap enough for the recall path). */
  record(e: RecallEntry): void {
    this.buffer.push(e);
    if (this.buffer.length >= FLUSH_ROWS) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), FLUSH_MS);
      this.timer.unref(); // a pending log flush must not keep a finished process alive
    }
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.buffer.length === 0) return;
    const rows = this.buffer;
    this.buffer = [];
    this.db.transaction(() => {
      for (const r of rows) {
        this.insert.run({ dev: null, ino: null, comm: null, pid: null, ...r, error: r.error ?? null });
      }
    })();
  }

  /** Time of the last successful recall of this file at or after `since`, or null. */
  recentlyRecalled(f: FileKey, since: number): number | null {
    this.flush();
    let last: number | null = null;
    if (f.path !== undefined) {
      const r = this.db.prepare('SELECT MAX(at) AS t FROM recalls WHERE path = ? AND at >= ? AND error IS NULL').get(f.path, since) as { t: number | null };
      last = r.t;
    }
    if (f.dev !== undefined && f.ino !== undefined) {
      const r = this.db
        .prepare('SELECT MAX(at) AS t FROM recalls WHERE dev = ? AND ino = ? AND at >= ? AND error IS NULL')
        .get(f.dev, f.ino, since) as { t: number | null };
      if (r.t !== null && (last === null || r.t > last)) last = r.t;
    }
    return last;
  }

  /** Every path (and dev:ino) recalled at or after `since`: one query for a whole plan. */
  recalledSince(since: number): { paths: Set<string>; inodes: Set<string> } {
    this.flush();
    const rows = this.db.prepare('SELECT DISTINCT path, dev, ino FROM recalls WHERE at >= ? AND error IS NULL').all(since) as {
      path: string;
      dev: number | null;
      ino: number | null;
    }[];
    const paths = new Set<string>();
    const inodes = new Set<string>();
    for (const r of rows) {
      paths.add(r.path);
      if (r.dev !== null && r.ino !== null) inodes.add(`${r.dev}:${r.ino}`);
    }
    return { paths, inodes };
  }

  /** The most recalled files (by count, then bytes), optionally since a time. */
  top(n: number, since = 0): TopRecalled[] {
    this.flush();
    return this.db
      .prepare(
        `SELECT path, COUNT(*) AS recalls, SUM(bytes) AS bytes, MAX(at) AS lastAt FROM recalls
         WHERE at >= ? AND error IS NULL GROUP BY path ORDER BY recalls DESC, bytes DESC, path LIMIT ?`,
      )
      .all(since, n) as TopRecalled[];
  }

  totals(since = 0): RecallTotals {
    this.flush();
    const r = this.db
      .prepare(
        `SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN error IS NULL THEN bytes END), 0) AS bytes,
                COUNT(error) AS errors, COUNT(DISTINCT CASE WHEN error IS NULL THEN path END) AS files
         FROM recalls WHERE at >= ?`,
      )
      .get(since) as { n: number; bytes: number; errors: number; files: number };
    return { recalls: r.n - r.errors, bytes: r.bytes, errors: r.errors, files: r.files };
  }

  /** Time of the first entry at or after `since`, or null when there is none. */
  firstAt(since = 0): number | null {
    this.flush();
    return (this.db.prepare('SELECT MIN(at) AS t FROM recalls WHERE at >= ?').get(since) as { t: number | null }).t;
  }

  /** Recalls per `bucketMs` from `since` (only buckets with events; the report fills the gaps). */
  timeline(since: number, bucketMs: number): RecallBucketRow[] {
    this.flush();
    return this.db
      .prepare(
        `SELECT (at / CAST(@b AS INTEGER)) * CAST(@b AS INTEGER) AS at, COUNT(*) - COUNT(error) AS recalls, COUNT(error) AS errors,
                COALESCE(SUM(CASE WHEN error IS NULL THEN bytes END), 0) AS bytes,
                AVG(latency_ms) AS latencyAvgMs, MAX(latency_ms) AS latencyMaxMs
         FROM recalls WHERE at >= @since GROUP BY 1 ORDER BY 1`,
      )
      .all({ b: Math.max(1, Math.trunc(bucketMs)), since }) as RecallBucketRow[];
  }

  /** Drops entries older than `before` (retention); returns how many. */
  prune(before: number): number {
    this.flush();
    return this.db.prepare('DELETE FROM recalls WHERE at < ?').run(before).changes;
  }

  close(): void {
    if (this.db.open) this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.db.close();
  }
}

export function recallLogPath(stateDir: string): string {
  return join(stateDir, RECALL_LOG_FILE);
}

export function openRecallLog(stateDir: string): RecallLog {
  return new RecallLog(recallLogPath(stateDir));
}
