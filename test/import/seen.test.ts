// import/seen.ts on a real SQLite catalog: the keys a run listed live in the database, not
// in memory; unseen() pages through the imported rows under DIR the run did not list;
// concurrent runs keep apart; a run's rows go when it ends, a killed run's at the next.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Catalog, type CatalogRow } from '../../src/engine/catalog.js';
import { SeenKeys } from '../../src/import/seen.js';

function row(ino: number, path: string, key: string, over: Partial<CatalogRow> = {}): CatalogRow {
  return { dev: 1, ino, path, state: 'released', pinned: false, tier: 't', key, size: 1, sha256: '', archivedAt: 1, updatedAt: 1, foreign: true, ...over };
}

test('unseen: imported rows under DIR whose key the run did not list, across pages; runs apart; rows removed at the end', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seen-'));
  const cat = new Catalog(join(dir, 'catalog.db'));
  try {
    const N = 1234; // more than one page (500) and one batch (1000)
    let ino = 1;
    for (let i = 0; i < N; i++) cat.upsert(row(ino++, `/d/imp/k${i}`, `p/k${i}`));
    cat.upsert(row(ino++, '/d/other/k1', 'p/k1-elsewhere')); // another directory
    cat.upsert(row(ino++, '/d/imp/mine', 'ab/own-key', { foreign: false })); // archived under its own key
    cat.upsert(row(ino++, '/d/imp/q', 'q/outside-prefix'));
    cat.upsert(row(ino++, '/d/imp/u', 'p/k5', { tier: 'u' })); // another tier
    const gone = ino;
    cat.upsert(row(ino++, '/d/imp/deleted', 'p/deleted'));
    cat.markDeleted(1, gone, 5);
    const a = new SeenKeys(cat.sqlite, 1_000_000);
    const b = new SeenKeys(cat.sqlite, 1_000_000);
    assert.notEqual(a.run, b.run);
    for (let i = 0; i < N; i++) if (i % 3 !== 0) a.add(`p/k${i}`);
    b.add('p/k0');
    const unseen = [...a.unseen('t', '/d/imp', 'p/')].map((u) => u.key).sort();
    const want = Array.from({ length: N }, (_, i) => i).filter((i) => i % 3 === 0).map((i) => `p/k${i}`).sort();
    assert.deepEqual(unseen, want);
    assert.deepEqual([...b.unseen('t', '/d/imp', 'p/')].length, N - 1, 'b listed only k0');
    a.close();
    const left = (r: number) => (cat.sqlite.prepare('SELECT count(*) AS n FROM import_seen WHERE run = ?').get(r) as { n: number }).n;
    assert.equal(left(a.run), 0);
    assert.equal(left(b.run), 1, 'b still running');
    // b "killed" (never closed): the next run removes its rows.
    b.close();
    cat.sqlite.prepare('INSERT INTO import_seen (run, key) VALUES (?, ?)').run(42, 'stale');
    const c = new SeenKeys(cat.sqlite, 2_000_000);
    assert.equal(left(42), 0, 'a killed run\'s rows are gone');
    c.close();
  } finally {
    cat.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
