// The catalog: an SQLite index of managed files (STATE_DIR/catalog.db, WAL) for reports,
// daemon start-up marking and garbage collection. It is never the source of truth:
// the trusted.tier.state xattr is, and `rebuild` refills the index from a scan.
import type Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FileState } from '../dsl/ast.js';
import type { StateRecord } from '../record/state-record.js';
import { openSqlite } from '../record/sqlite.js';
import { GroupCommit } from '../record/group-commit.js';

/** The catalog's file name in STATE_DIR. */
export const CATALOG_FILE = 'catalog.db';

/** Rows read at a time by `all` and `releasedFiles`. */
const PAGE = 1000;

export interface CatalogRow {
  dev: number;
  ino: number;
  path: string;
  state: FileState;
  pinned: boolean;
  tier: string | null;
  key: string | null;
  size: number;
  sha256: string | null;
  archivedAt: number | null;
  updatedAt: number;
  /** When change tracking saw the file deleted (ms); null/absent for a live file. */
  deletedAt?: number | null;
  /**
   * The inode's file handle (struct file_handle bytes, name_to_handle_at), set by the engine
   * when it writes the row holding an fd. Absent on upsert: the stored one is kept (same
   * dev+ino; a reused inode number has another generation, so an old handle is ESTALE).
   */
  handle?: Buffer | null;
  /** The copy is an imported object tier did not write (record copy.foreign): gc never deletes its key. */
  foreign?: boolean;
}

/** Row states start-up marking opens (releasedFiles); see there for 'dirty'. */
export const MARKED_AT_START: readonly FileState[] = ['released', 'partial', 'dirty'];

export interface RunRow {
  id: number;
  policyFile: string;
  policy: string | null;
  dryRun: boolean;
  startedAt: number;
  finishedAt: number | null;
  /** JSON summary of the run (counts per action, failures). */
  summary: unknown;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS files (
  dev INTEGER NOT NULL, ino INTEGER NOT NULL, path TEXT NOT NULL,
  state TEXT NOT NULL, pinned INTEGER NOT NULL DEFAULT 0,
  tier TEXT, key TEXT, size INTEGER NOT NULL, sha256 TEXT,
  archived_at INTEGER, updated_at INTEGER NOT NULL,
  PRIMARY KEY (dev, ino)
);
CREATE INDEX IF NOT EXISTS files_state ON files(state);
CREATE INDEX IF NOT EXISTS files_key ON files(tier, key);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, policy_file TEXT NOT NULL, policy TEXT,
  dry_run INTEGER NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER, summary TEXT
);`;

/** The catalog row a record stands for; null when the file is not managed (no record). */
export function rowFromRecord(
  f: { dev: number; ino: number; absPath: string; size: number },
  rec: StateRecord | null,
  state: FileState,
  now: number,
  handle?: Buffer | null,
): CatalogRow | null {
  if (!rec) return null;
  return {
    ...(handle ? { handle } : {}),
    dev: f.dev,
    ino: f.ino,
    path: f.absPath,
    state,
    pinned: rec.pinned,
    tier: rec.copy?.tier ?? null,
    key: rec.copy?.key ?? null,
    size: f.size,
    sha256: rec.copy?.sha256 ?? null,
    archivedAt: rec.copy?.archivedAt ?? null,
    updatedAt: now,
    foreign: rec.copy?.foreign !== undefined,
  };
}

export class Catalog {
  private readonly db: Database.Database;
  private readonly upsertStmt: Database.Statement;
  private readonly removeStmt: Database.Statement;
  private readonly track: TrackStatements;
  private readonly ctimeSetStmt: Database.Statement;
  private readonly ctimeGetStmt: Database.Statement;
  private readonly handleSetStmt: Database.Statement;
  private readonly reviveAtStmt: Database.Statement;
  private readonly foreignSetStmt: Database.Statement;

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.db = openSqlite(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.upsertStmt = this.db.prepare(
      `INSERT INTO files (dev, ino, path, state, pinned, tier, key, size, sha256, archived_at, updated_at)
       VALUES (@dev, @ino, @path, @state, @pinned, @tier, @key, @size, @sha256, @archivedAt, @updatedAt)
       ON CONFLICT(dev, ino) DO UPDATE SET path=excluded.path, state=excluded.state, pinned=excluded.pinned,
         tier=excluded.tier, key=excluded.key, size=excluded.size, sha256=excluded.sha256,
         archived_at=excluded.archived_at, updated_at=excluded.updated_at`,
    );
    this.removeStmt = this.db.prepare('DELETE FROM files WHERE dev = ? AND ino = ?');
    this.track = trackStatements(this.db);
    addColumn(this.db, 'ctime_ns', 'TEXT');
    addColumn(this.db, 'handle', 'BLOB');
    addColumn(this.db, 'foreign_copy', 'INTEGER');
    this.foreignSetStmt = this.db.prepare('UPDATE files SET foreign_copy = ? WHERE dev = ? AND ino = ?');
    this.handleSetStmt = this.db.prepare('UPDATE files SET handle = ? WHERE dev = ? AND ino = ?');
    this.reviveAtStmt = this.db.prepare('UPDATE files SET path = ?, deleted_at = NULL WHERE dev = ? AND ino = ? AND tier = ? AND key = ?');
    this.ctimeSetStmt = this.db.prepare('UPDATE files SET ctime_ns = ? WHERE dev = ? AND ino = ?');
    this.ctimeGetStmt = this.db.prepare('SELECT ctime_ns FROM files WHERE dev = ? AND ino = ?');
  }

  /**
   * The file's st_ctime (ns, decimal) right after the engine's last change to it, or by a
   * reconcile that hashed it unchanged. Equal to the file's ctime now: nothing touched the
   * inode since (ctime cannot be set by users); otherwise the copy must be re-verified.
   */
  setCtime(dev: number, ino: number, ctimeNs: string | null): void {
    this.ctimeSetStmt.run(ctimeNs, dev, ino);
  }

  /** The recorded ctime of a row; null: no row, or none recorded (older row, rebuilt index). */
  ctimeOf(dev: number, ino: number): string | null {
    const r = this.ctimeGetStmt.get(dev, ino) as { ctime_ns: string | null } | undefined;
    return r?.ctime_ns ?? null;
  }

  /**
   * One transaction: the row and its side columns land together (and cost one commit, not
   * four); with `ctimeNs`, the recorded ctime too (setCtime).
   */
  upsert(row: CatalogRow, ctimeNs?: string): void {
    this.upsertTx(row, ctimeNs);
  }

  private readonly upsertTx = (row: CatalogRow, ctimeNs?: string): void =>
    this.db.transaction(() => {
      const { handle, foreign, ...rest } = row;
      this.upsertStmt.run({ ...rest, pinned: row.pinned ? 1 : 0 });
      if (handle) this.handleSetStmt.run(handle, row.dev, row.ino);
      if (foreign !== undefined) this.foreignSetStmt.run(foreign ? 1 : 0, row.dev, row.ino);
      this.track.revive.run(row.dev, row.ino); // a live file (a reused inode number) is not deleted
      if (ctimeNs !== undefined) this.ctimeSetStmt.run(ctimeNs, row.dev, row.ino);
    })();

  /** Runs `fn` (several upserts) as one transaction: one commit for the lot. */
  batch(fn: () => void): void {
    this.db.transaction(fn)();
  }

  private readonly group = new GroupCommit<[CatalogRow, string | undefined]>(
    (items) => this.batch(() => items.forEach(([row, ctime]) => this.upsert(row, ctime))),
    ([row, ctime]) => this.upsert(row, ctime),
  );

  /**
   * upsert() in the next group commit (record/group-commit.ts): the rows of the migrations in
   * flight share one transaction (one commit per row was ~10% of the daemon's CPU releasing
   * 64 KiB files, bench 7). Resolves once the row is committed.
   */
  upsertGrouped(row: CatalogRow, ctimeNs?: string): Promise<void> {
    return this.group.add([row, ctimeNs]);
  }

  /** Records the inode's file handle (a row written before the column existed). */
  setHandle(dev: number, ino: number, handle: Buffer): void {
    this.handleSetStmt.run(handle, dev, ino);
  }

  /**
   * A row's inode lives on at `path` (its handle says so) and its record still names this
   * copy: the row follows it and is no longer deleted. False when the row changed meanwhile.
   */
  reviveAt(dev: number, ino: number, path: string, tier: string, key: string): boolean {
    return this.reviveAtStmt.run(path, dev, ino, tier, key).changes > 0;
  }

  /** Change tracking saw the file deleted: the row stays (gc counts its retention from now). */
  markDeleted(dev: number, ino: number, now: number): boolean {
    return this.track.markDeleted.run(now, dev, ino).changes > 0;
  }

  /** The live row at `path` (a deleted one only when no live row has it). */
  rowByPath(path: string): CatalogRow | null {
    const r = this.track.byPath.get(path) as DbRow | undefined;
    return r ? fromDb(r) : null;
  }

  /** A file was renamed: its row follows it. */
  renamePath(dev: number, ino: number, to: string): boolean {
    return this.track.renamePath.run(to, dev, ino).changes > 0;
  }

  /** A directory was renamed: every row under `from/` moves under `to/`. Returns the rows moved. */
  renamePrefix(from: string, to: string): number {
    const f = from.replace(/\/+$/, '') + '/';
    const t = to.replace(/\/+$/, '') + '/';
    // A prefix compare on the bytes, not LIKE: '%' and '_' in names are plain characters.
    return this.track.renamePrefix.run({ t, f }).changes;
  }

  remove(dev: number, ino: number): void {
    this.removeStmt.run(dev, ino);
  }

  /** gc collected `key`: drops the row only if it is still that deleted file's (not a revived, reused inode's). */
  forgetDeleted(dev: number, ino: number, key: string): boolean {
    return this.track.forgetDeleted.run(dev, ino, key).changes > 0;
  }

  get(dev: number, ino: number): CatalogRow | null {
    const r = this.db.prepare('SELECT * FROM files WHERE dev = ? AND ino = ?').get(dev, ino) as DbRow | undefined;
    return r ? fromDb(r) : null;
  }

  /**
   * Files the daemon may have to mark at start-up; the record is re-checked through an fd
   * before marking. 'dirty' rows are included: a released file written past its end (or
   * truncated) is 'dirty' by size while its record still says released/partial and its
   * holes still need the mark.
   */
  *releasedFiles(): Generator<CatalogRow> {
    yield* this.releasedFilesOutside([]);
  }

  /** releasedFiles() but for paths under none of `dirs` (filesets under a filesystem mark need no per-file mark): filtered in SQL. */
  *releasedFilesOutside(dirs: readonly string[]): Generator<CatalogRow> {
    const prefixes = dirs.map((d) => d.replace(/\/+$/, '') + '/');
    const not = prefixes.map(() => ' AND substr(path, 1, length(?)) != ?').join('');
    const sql = `SELECT rowid AS rid, * FROM files WHERE state IN (${MARKED_AT_START.map((x) => `'${x}'`).join(', ')}) AND deleted_at IS NULL${not}
      AND rowid > ? ORDER BY rowid LIMIT ${PAGE}`;
    const args = prefixes.flatMap((p) => [p, p]);
    // Pages by keyset, not iterate() (record/sqlite.ts): rows written between pages are neither lost nor repeated.
    for (let last = -1; ; ) {
      const rows = this.db.prepare(sql).all(...args, last) as (DbRow & { rid: number })[];
      for (const r of rows) yield fromDb(r);
      if (rows.length < PAGE) return;
      last = rows[rows.length - 1]!.rid;
    }
  }

  *all(): Generator<CatalogRow> {
    const first = `SELECT rowid AS rid, * FROM files ORDER BY path, rowid LIMIT ${PAGE}`;
    const next = `SELECT rowid AS rid, * FROM files WHERE (path, rowid) > (?, ?) ORDER BY path, rowid LIMIT ${PAGE}`;
    let rows = this.db.prepare(first).all() as (DbRow & { rid: number })[];
    for (;;) {
      for (const r of rows) yield fromDb(r);
      if (rows.length < PAGE) return;
      const last = rows[rows.length - 1]!;
      rows = this.db.prepare(next).all(last.path, last.rid) as (DbRow & { rid: number })[];
    }
  }

  /** Replaces the index of one filesystem with what a scan saw (rows for managed files). */
  rebuild(dev: number, rows: Iterable<CatalogRow>): number {
    let n = 0;
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM files WHERE dev = ?').run(dev);
      for (const r of rows) {
        this.upsert(r);
        n++;
      }
    })();
    return n;
  }

  startRun(policyFile: string, policy: string | null, dryRun: boolean, now: number): number {
    const r = this.db
      .prepare('INSERT INTO runs (policy_file, policy, dry_run, started_at) VALUES (?, ?, ?, ?)')
      .run(policyFile, policy, dryRun ? 1 : 0, now);
    return Number(r.lastInsertRowid);
  }

  finishRun(id: number, summary: unknown, now: number): void {
    this.db.prepare('UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?').run(now, JSON.stringify(summary), id);
  }

  runs(limit = 20): RunRow[] {
    const rows = this.db.prepare('SELECT * FROM runs ORDER BY id DESC LIMIT ?').all(limit) as DbRun[];
    return rows.map((r) => ({
      id: r.id,
      policyFile: r.policy_file,
      policy: r.policy,
      dryRun: r.dry_run === 1,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      summary: r.summary ? JSON.parse(r.summary) : null,
    }));
  }

  /** The connection, for a module that keeps its own table here (import/seen.ts). */
  get sqlite(): Database.Database {
    return this.db;
  }

  close(): void {
    this.db.close();
  }
}

export interface DbRow {
  dev: number;
  ino: number;
  path: string;
  state: FileState;
  pinned: number;
  tier: string | null;
  key: string | null;
  size: number;
  sha256: string | null;
  archived_at: number | null;
  updated_at: number;
  deleted_at?: number | null;
  handle?: Buffer | null;
  foreign_copy?: number | null;
}

interface DbRun {
  id: number;
  policy_file: string;
  policy: string | null;
  dry_run: number;
  started_at: number;
  finished_at: number | null;
  summary: string | null;
}

export function fromDb(r: DbRow): CatalogRow {
  return {
    dev: r.dev,
    ino: r.ino,
    path: r.path,
    state: r.state,
    pinned: r.pinned === 1,
    tier: r.tier,
    key: r.key,
    size: r.size,
    sha256: r.sha256,
    archivedAt: r.archived_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at ?? null,
    handle: r.handle ?? null,
    ...(r.foreign_copy ? { foreign: true } : {}),
  };
}

interface TrackStatements {
  revive: Database.Statement;
  markDeleted: Database.Statement;
  byPath: Database.Statement;
  renamePath: Database.Statement;
  renamePrefix: Database.Statement;
  forgetDeleted: Database.Statement;
}

/** Change tracking's column (deleted_at, added to older catalogs) and statements. */
function trackStatements(db: Database.Database): TrackStatements {
  addColumn(db, 'deleted_at', 'INTEGER');
  db.exec('CREATE INDEX IF NOT EXISTS files_path ON files(path)');
  return {
    revive: db.prepare('UPDATE files SET deleted_at = NULL WHERE dev = ? AND ino = ? AND deleted_at IS NOT NULL'),
    markDeleted: db.prepare('UPDATE files SET deleted_at = ? WHERE dev = ? AND ino = ? AND deleted_at IS NULL'),
    byPath: db.prepare('SELECT * FROM files WHERE path = ? ORDER BY deleted_at IS NOT NULL, updated_at DESC LIMIT 1'),
    renamePath: db.prepare('UPDATE files SET path = ? WHERE dev = ? AND ino = ?'),
    renamePrefix: db.prepare('UPDATE files SET path = @t || substr(path, length(@f) + 1) WHERE substr(path, 1, length(@f)) = @f'),
    forgetDeleted: db.prepare('DELETE FROM files WHERE dev = ? AND ino = ? AND deleted_at IS NOT NULL AND key = ?'),
  };
}

/**
 * Adds a column older catalogs lack: deleted_at (NULL: live), ctime_ns (NULL: the next
 * release hashes), handle (NULL until the engine next writes the row).
 */
function addColumn(db: Database.Database, name: string, type: string): void {
  const cols = db.prepare('PRAGMA table_info(files)').all() as { name: string }[];
  if (cols.some((c) => c.name === name)) return;
  try {
    db.exec(`ALTER TABLE files ADD COLUMN ${name} ${type}`);
  } catch (e) {
    // Another process (daemon and CLI open the same file) added it first.
    if (!/duplicate column/i.test((e as Error).message)) throw e;
  }
}

export function openCatalog(file: string): Catalog {
  return new Catalog(file);
}
