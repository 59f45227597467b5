// The catalog's ctime_ns column (the stale-copy guard's "unchanged since" proof): added
// to catalogs made before it, kept by upserts, absent (null) when never recorded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite } from '../../src/record/sqlite.js';
import { Catalog, type CatalogRow } from '../../src/engine/catalog.js';

const row = (ino: number, state: CatalogRow['state'] = 'archived'): CatalogRow => ({
  dev: 7, ino, path: `/d/f${ino}`, state, pinned: false, tier: 't', key: `k${ino}`, size: 10, sha256: 'ab', archivedAt: 1, updatedAt: 2,
});

test('an old catalog gets ctime_ns; its rows read null until set; upserts keep it; two opens race safely', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tier-cat-'));
  try {
    const file = join(dir, 'catalog.db');
    const old = openSqlite(file);
    old.exec(`CREATE TABLE files (dev INTEGER NOT NULL, ino INTEGER NOT NULL, path TEXT NOT NULL, state TEXT NOT NULL,
      pinned INTEGER NOT NULL DEFAULT 0, tier TEXT, key TEXT, size INTEGER NOT NULL, sha256 TEXT, archived_at INTEGER,
      updated_at INTEGER NOT NULL, PRIMARY KEY (dev, ino));
      INSERT INTO files VALUES (7, 1, '/d/f1', 'archived', 0, 't', 'k1', 10, 'ab', 1, 2);`);
    old.close();
    const a = new Catalog(file);
    const b = new Catalog(file); // a second process opening the migrated file
    assert.equal(a.ctimeOf(7, 1), null, 'an old row has no ctime');
    assert.equal(a.get(7, 1)?.key, 'k1', 'old rows survive the migration');
    a.setCtime(7, 1, '1764361234123456789');
    assert.equal(b.ctimeOf(7, 1), '1764361234123456789', 'nanoseconds kept exactly');
    a.upsert({ ...row(1), state: 'released' });
    assert.equal(a.ctimeOf(7, 1), '1764361234123456789', 'an upsert keeps the recorded ctime');
    assert.equal(a.ctimeOf(7, 99), null, 'no row: null');
    a.setCtime(7, 99, '5'); // no row: nothing to set, no row created
    assert.equal(a.get(7, 99), null);
    a.close();
    b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
