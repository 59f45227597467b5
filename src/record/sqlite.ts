// Every better-sqlite3 connection of tier opens here (catalog, recall log, read-only readers).
// Rule: no Database or Statement object of better-sqlite3 is ever garbage. Under Node 24,
// node::ObjectWrap's destructor removes an environment cleanup hook, and when V8 collects
// such an object in a GC that runs with no Node context entered, the process aborts
// (`Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook, from
// Statement::~Statement or Database::~Database; better-sqlite3 12.6 and 12.11 alike,
// upstream WiseLibs/better-sqlite3#1515 closed without a fix). Objects that stay referenced
// are only freed by the environment's own clean-up at exit, which is safe. So:
// - each connection opened here stays referenced for the life of the process (a daemon opens
//   a handful; a CLI run exits);
// - its `prepare` hands back one statement per SQL text (a second one only while the first is
//   busy iterating), so repeated queries reuse statements instead of leaving garbage;
// - `iterate()` is not used: its StatementIterator is an ObjectWrap too. Read pages with
//   `.all()` and a keyset (engine/catalog.ts `all`, `releasedFiles`).
// Node 20's ObjectWrap has no such hook; the same code runs there (docs/runtime.md).
// Memory: each connection's page cache is capped at CACHE_KIB, whatever the database's size.
import Database from 'better-sqlite3';

export type Sqlite = Database.Database;
export type SqliteStatement = Database.Statement;

const held: Sqlite[] = [];

/** Opens `file` (better-sqlite3 options), held for the life of the process; see the file's rule. */
export function openSqlite(file: string, options?: Database.Options): Sqlite {
  const db = new Database(file, options);
  held.push(db);
  const prepare = db.prepare.bind(db) as (sql: string) => SqliteStatement;
  const bySql = new Map<string, SqliteStatement[]>();
  const cached = (sql: string): SqliteStatement => {
    const list = bySql.get(sql) ?? [];
    const free = list.find((s) => !s.busy);
    if (free) return free;
    const s = prepare(sql);
    s.iterate = () => {
      throw new Error(`sqlite: iterate() leaves a StatementIterator for V8 to collect (aborts under Node 24): page with all() instead (${sql.slice(0, 60)})`);
    };
    list.push(s);
    bySql.set(sql, list);
    return s;
  };
  db.prepare = cached as Sqlite['prepare'];
  // better-sqlite3's own pragma() prepares a new statement each call; transaction() keeps its
  // statements for the life of the connection (held: fine).
  db.pragma = ((source: string, options?: Database.PragmaOptions) => {
    const s = cached(`PRAGMA ${source}`);
    if (!s.reader) {
      s.run();
      return options?.simple ? undefined : [];
    }
    return options?.simple ? s.pluck(true).get() : s.pluck(false).all();
  }) as Sqlite['pragma'];
  // better-sqlite3 builds SQLite with a 16 MiB page cache per connection, filled in
  // proportion to the database: a daemon's three connections over a 100,000-row catalog held
  // ~34 MiB more than over an empty one (bench/b9-memory.ts). SQLite's own default, 2 MiB,
  // bounds it whatever the catalog's size (pages are reread from the OS page cache).
  db.pragma(`cache_size = -${CACHE_KIB}`);
  return db;
}

/** Page cache per connection, KiB (SQLite's default; see openSqlite). */
export const CACHE_KIB = 2000;

