// Group commit of migration rows (Catalog.upsertGrouped, src/record/group-commit.ts): rows written in one turn
// share one transaction, each promise settles only once its row is committed (a second
// connection reads it), and a row that fails fails alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Catalog, type CatalogRow } from '../../src/engine/catalog.js';

const row = (ino: number): CatalogRow => ({
  dev: 7, ino, path: `/d/f${ino}`, state: 'released', pinned: false, tier: 't', key: `k${ino}`, size: 10, sha256: 'ab', archivedAt: 1, updatedAt: 2,
});

test('rows of one turn: one transaction, committed when their promises resolve; a bad row fails alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tier-catb-'));
  const file = join(dir, 'catalog.db');
  const a = new Catalog(file);
  const other = new Catalog(file); // another connection: sees only committed rows
  try {
    let batches = 0;
    const batch = a.batch.bind(a);
    a.batch = (fn) => (batches++, batch(fn));
    const ps = [1, 2, 3, 4].map((i) => a.upsertGrouped(row(i), i === 4 ? '123' : undefined));
    assert.equal(other.get(7, 1), null, 'nothing committed before the turn ends');
    await Promise.all(ps);
    assert.equal(batches, 1);
    for (const i of [1, 2, 3, 4]) assert.equal(other.get(7, i)?.key, `k${i}`);
    assert.equal(other.ctimeOf(7, 4), '123');

    const upsert = a.upsert.bind(a);
    a.upsert = (r, c) => {
      if (r.ino === 6) throw new Error('disk I/O error');
      upsert(r, c);
    };
    const rs = await Promise.allSettled([5, 6, 7].map((i) => a.upsertGrouped(row(i))));
    assert.deepEqual(rs.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.equal(other.get(7, 5)?.key, 'k5');
    assert.equal(other.get(7, 6), null);
    assert.equal(other.get(7, 7)?.key, 'k7');
  } finally {
    a.close();
    other.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
