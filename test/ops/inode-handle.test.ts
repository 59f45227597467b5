// The catalog's `handle` column and what it answers (src/changes/inode-handle.ts): the
// migration of older catalogs, InodeProbe on a real loop-mounted ext4 (alive under another
// name outside the roots, record naming the copy or not, gone), and gc counting a deleted
// row whose inode lives on as a reference -- while a row without a handle (older catalog)
// keeps today's behaviour.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, linkSync, mkdirSync, openSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { openSqlite } from '../../src/record/sqlite.js';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { fileHandleOfFd, fsetxattr } from '../../src/kernel/libc.js';
import { encodeRecord, XATTR_STATE, type StateRecord } from '../../src/record/state-record.js';
import { Catalog, type CatalogRow } from '../../src/engine/catalog.js';
import { newKey } from '../../src/engine/execute.js';
import { handleAt, InodeProbe } from '../../src/changes/inode-handle.js';
import { collectGarbage } from '../../src/gc/gc.js';
import { LocalTier } from '../../src/tiers/local.js';

const D = 86_400_000;

function writeManaged(path: string, key: string, state: StateRecord['state'] = 'archived'): void {
  writeFileSync(path, 'x');
  const rec: StateRecord = { v: 1, state, pinned: false, gen: 1, copy: { tier: 'cold', key, size: 1, mtimeNs: '0', sha256: '0', archivedAt: 0, chunk: 4 << 20 } };
  const fd = openSync(path, 'r');
  try {
    fsetxattr(fd, XATTR_STATE, encodeRecord(rec), path);
  } finally {
    closeSync(fd);
  }
}

function rowOf(path: string, key: string, handle: Buffer | null): CatalogRow {
  const st = statSync(path);
  return { dev: st.dev, ino: st.ino, path, state: 'archived', pinned: false, tier: 'cold', key, size: 1, sha256: '0', archivedAt: 0, updatedAt: 0, handle };
}

function probeCase(fs: LoopFs): void {
  const data = join(fs.dir, 'probe-data');
  const outside = join(fs.dir, 'probe-outside');
  mkdirSync(data);
  mkdirSync(outside);
  const a = join(data, 'a');
  const key = newKey();
  writeManaged(a, key, 'released');
  const st = statSync(a);
  const handle = handleAt(a, st.dev, st.ino);
  assert.ok(handle && handle.length > 8, `${fs.type} gives a handle`);
  assert.equal(handleAt(a, st.dev, st.ino + 1), null, 'another inode at the path: no handle');
  const fd = openSync(a, 'r');
  assert.deepEqual(fileHandleOfFd(fd), handle, 'the handle through the fd is the same');
  closeSync(fd);

  const probe = new InodeProbe([data]);
  try {
    const row = { dev: st.dev, ino: st.ino, tier: 'cold', key, handle };
    assert.deepEqual(probe.inodeAlive(row), { kind: 'alive', names: true, path: a, holes: true });
    assert.deepEqual(probe.inodeAlive({ ...row, handle: null }), { kind: 'unknown' }, 'no handle: decide as before');
    assert.deepEqual(probe.inodeAlive({ ...row, dev: st.dev + 1 }), { kind: 'unknown' }, 'no root on that filesystem');

    const b = join(outside, 'b');
    linkSync(a, b);
    unlinkSync(a);
    writeFileSync(a, 'another file now');
    assert.deepEqual(probe.inodeAlive(row), { kind: 'alive', names: true, path: b, holes: true }, 'found outside the roots');
    const other = probe.inodeAlive({ ...row, key: newKey() });
    assert.deepEqual(other, { kind: 'alive', names: false, path: b, holes: true }, 'alive, but its record names another copy');

    unlinkSync(b);
    assert.deepEqual(probe.inodeAlive(row), { kind: 'gone' });
  } finally {
    probe.close();
  }
}

describe('catalog handle column', () => {
  let fs: LoopFs;
  before(() => (fs = mountLoopFs('ext4', 32)));
  after(() => fs.unmount());

  test('an older catalog gets the column; upsert stores the handle, an upsert without one keeps it', () => {
    const file = join(fs.scratch, 'old.db');
    const db = openSqlite(file);
    // The schema before deleted_at, ctime_ns and handle.
    db.exec(`CREATE TABLE files (dev INTEGER NOT NULL, ino INTEGER NOT NULL, path TEXT NOT NULL, state TEXT NOT NULL,
      pinned INTEGER NOT NULL DEFAULT 0, tier TEXT, key TEXT, size INTEGER NOT NULL, sha256 TEXT, archived_at INTEGER,
      updated_at INTEGER NOT NULL, PRIMARY KEY (dev, ino))`);
    db.prepare(`INSERT INTO files VALUES (1, 2, '/x', 'released', 0, 'cold', 'k', 5, NULL, 1, 1)`).run();
    db.close();

    const cat = new Catalog(file);
    try {
      assert.equal(cat.get(1, 2)?.handle, null, 'an old row has no handle');
      const h = Buffer.from([8, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
      cat.upsert({ ...cat.get(1, 2)!, handle: h });
      assert.deepEqual(cat.get(1, 2)?.handle, h);
      cat.upsert({ ...cat.get(1, 2)!, state: 'archived', handle: undefined });
      assert.deepEqual(cat.get(1, 2)?.handle, h, 'kept by an upsert that has none');
      assert.equal(cat.get(1, 2)?.state, 'archived');
      cat.markDeleted(1, 2, 10);
      assert.equal(cat.reviveAt(1, 2, '/y', 'cold', 'other'), false, 'another key: not revived');
      assert.equal(cat.reviveAt(1, 2, '/y', 'cold', 'k'), true);
      assert.equal(cat.get(1, 2)?.path, '/y');
      assert.equal(cat.get(1, 2)?.deletedAt, null);
    } finally {
      cat.close();
    }
    const again = new Catalog(file); // migrating twice is a no-op
    again.close();
  });

  test('InodeProbe: alive under another name, naming the copy or not, gone', () => probeCase(fs));

  test('gc: a deleted row whose inode lives on outside the roots is a reference (row revived); without a handle it is not', async () => {
    const data = join(fs.dir, 'gc-data');
    const outside = join(fs.dir, 'gc-outside');
    const tierDir = join(fs.scratch, 'gc-tier');
    const state = join(fs.scratch, 'gc-state');
    for (const d of [data, outside, tierDir, state]) mkdirSync(d);
    const tier = new LocalTier('cold', tierDir);
    const keys = { living: newKey(), oldRow: newKey(), gone: newKey() };
    const rows: CatalogRow[] = [];
    for (const [name, key] of Object.entries(keys)) {
      const p = join(data, name);
      writeManaged(p, key);
      const buf = Buffer.from(name);
      await tier.put(key, Readable.from([buf]), buf.length, { sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length, path: p, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 });
      const t = new Date(Date.now() - 10 * D);
      utimesSync(join(tierDir, key), t, t);
      const st = statSync(p);
      rows.push({ ...rowOf(p, key, name === 'oldRow' ? null : handleAt(p, st.dev, st.ino)), deletedAt: Date.now() - 5 * D });
    }
    // `living` and `oldRow` live on under a hard link outside the roots; their names in the
    // roots hold other files now. `gone` is deleted for real.
    for (const name of ['living', 'oldRow']) {
      linkSync(join(data, name), join(outside, name));
      unlinkSync(join(data, name));
      writeFileSync(join(data, name), 'replacement');
    }
    unlinkSync(join(data, 'gone'));

    const r = await collectGarbage({ tiers: new Map([['cold', tier]]), keepDeleted: new Map([['cold', D]]), catalogRefs: rows, roots: [data], stateDir: state, now: Date.now(), dryRun: false });
    assert.ok(existsSync(join(tierDir, keys.living)), 'the living inode keeps its object');
    assert.ok(!existsSync(join(tierDir, keys.gone)), 'a really deleted file loses its object');
    // Today's behaviour for a row without a handle (the gap this column closes).
    assert.ok(!existsSync(join(tierDir, keys.oldRow)), 'no handle: taken for deleted');
    const living = rows[0]!;
    assert.deepEqual(r.revive, [{ dev: living.dev, ino: living.ino, path: join(outside, 'living'), tier: 'cold', key: keys.living }]);
    assert.ok(!r.forget.some((f) => f.key === keys.living));
    await tier.close();
  });
});

describe('InodeProbe on xfs (handle type 0x81: 64-bit inode + generation)', () => {
  let fs: LoopFs;
  before(() => (fs = mountLoopFs('xfs')));
  after(() => fs.unmount());
  test('alive under another name, naming the copy or not, gone', () => probeCase(fs));
});
