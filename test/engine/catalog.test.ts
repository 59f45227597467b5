import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCatalog, rowFromRecord, type CatalogRow } from '../../src/engine/catalog.js';
import type { StateRecord } from '../../src/record/state-record.js';

const rec = (state: StateRecord['state'], key = 'k1'): StateRecord => ({
  v: 1,
  state,
  pinned: false,
  gen: 1,
  copy: { tier: 'nas', key, size: 10, mtimeNs: '5', sha256: 'ab', archivedAt: 7, chunk: 4096 },
});

test('catalog: upsert by inode, released files for start-up, rebuild, runs (real SQLite, WAL)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tier-cat-'));
  try {
    const c = openCatalog(join(dir, 'state', 'catalog.db'));
    const row = (ino: number, path: string, state: StateRecord['state']): CatalogRow =>
      rowFromRecord({ dev: 1, ino, absPath: path, size: 10 }, rec(state, `k${ino}`), state, 100)!;
    assert.equal(rowFromRecord({ dev: 1, ino: 1, absPath: '/x', size: 1 }, null, 'resident', 1), null);
    c.upsert(row(1, '/a', 'archived'));
    c.upsert(row(2, '/b', 'released'));
    c.upsert(row(3, '/c', 'partial'));
    // Dirty rows too: a released file written past its end still has holes (its record says so).
    c.upsert(row(4, '/d', 'dirty'));
    // A rename keeps the inode: the row moves, it is not duplicated.
    c.upsert(row(2, '/b-renamed', 'released'));
    assert.deepEqual([...c.releasedFiles()].map((r) => [r.path, r.state, r.key]).sort(), [
      ['/b-renamed', 'released', 'k2'],
      ['/c', 'partial', 'k3'],
      ['/d', 'dirty', 'k4'],
    ]);
    assert.equal(c.get(1, 1)?.tier, 'nas');
    c.remove(1, 3);
    assert.equal(c.get(1, 3), null);
    c.remove(1, 4);
    assert.equal(c.rebuild(1, [row(9, '/z', 'released')]), 1);
    assert.deepEqual([...c.all()].map((r) => r.path), ['/z']);
    const id = c.startRun('/p.hsmpolicy', null, false, 1000);
    c.finishRun(id, { done: 3 }, 2000);
    assert.deepEqual(c.runs(), [{ id, policyFile: '/p.hsmpolicy', policy: null, dryRun: false, startedAt: 1000, finishedAt: 2000, summary: { done: 3 } }]);
    c.close();
    // Reopening sees the same data.
    const again = openCatalog(join(dir, 'state', 'catalog.db'));
    assert.equal([...again.all()].length, 1);
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('catalog: released rows outside the filesystem-marked roots (start-up marking of fallback filesets only)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tier-cat-'));
  try {
    const c = openCatalog(join(dir, 'catalog.db'));
    const row = (ino: number, path: string, state: StateRecord['state']): CatalogRow =>
      rowFromRecord({ dev: 1, ino, absPath: path, size: 10 }, rec(state, `k${ino}`), state, 100)!;
    c.upsert(row(1, '/srv/a/x', 'released'));
    c.upsert(row(2, '/srv/ab/y', 'released')); // a sibling sharing the prefix: not under /srv/a
    c.upsert(row(3, '/srv/b/z', 'partial'));
    c.upsert(row(4, '/srv/a/sub/w', 'dirty'));
    c.upsert(row(5, '/srv/c/v', 'archived'));
    const paths = (dirs: string[]) => [...c.releasedFilesOutside(dirs)].map((r) => r.path).sort();
    assert.deepEqual(paths([]), ['/srv/a/sub/w', '/srv/a/x', '/srv/ab/y', '/srv/b/z']);
    assert.deepEqual(paths(['/srv/a']), ['/srv/ab/y', '/srv/b/z']);
    assert.deepEqual(paths(['/srv/a/', '/srv/b']), ['/srv/ab/y']);
    c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
