// Child of sqlite-held.test.ts: opens and closes catalogs and SQLite connections many times,
// runs every kind of query tier uses, drops every reference, then churns the heap so V8
// collects. `raw` does the same with better-sqlite3 directly (what aborted under Node 24).
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { openCatalog } from '../../src/engine/catalog.js';
import { openSqlite } from '../../src/record/sqlite.js';

const [dir, mode] = process.argv.slice(2) as [string, string];
const open = mode === 'raw' ? (f: string) => new Database(f) : (f: string) => openSqlite(f);
for (let i = 0; i < 30; i++) {
  const db = open(join(dir, 'x.db'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY, b TEXT)');
  db.transaction(() => {
    for (let j = 0; j < 20; j++) db.prepare('INSERT OR REPLACE INTO t VALUES (?, ?)').run(j, `v${j}`);
  })();
  db.prepare('SELECT count(*) AS n FROM t').get();
  db.close();
  if (mode !== 'raw') {
    const cat = openCatalog(join(dir, 'catalog.db'));
    cat.upsert({ dev: 1, ino: i, path: `/m/${i}`, state: 'released', pinned: false, tier: 't', key: `k${i}`, size: 1, sha256: null, archivedAt: 1, updatedAt: 1 });
    cat.get(1, i);
    [...cat.releasedFiles()];
    [...cat.all()];
    cat.close();
  }
}
let junk: unknown[] = [];
for (let i = 0; i < 20_000; i++) {
  junk.push({ a: new Array(100).fill(i) });
  if (junk.length > 2000) junk = [];
}
setTimeout(() => console.log('ok'), 200);
