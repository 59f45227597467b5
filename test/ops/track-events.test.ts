// Change tracking with FID events on a real loop-mounted ext4: writes seen while the writer
// keeps the file open, deletes (not the removal of one hard link), renames of files and
// directories, renames onto a managed file, our own process ignored, queue overflow; then
// what each finding does to a real catalog (track-catalog.ts).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, closeSync, mkdirSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChangeTracker, type DeletedFile, type DirtyFile, type RenamedEntry } from '../../src/changes/change-tracker.js';
import { trackAlive, trackDeleted, trackDirty, trackRenamed } from '../../src/changes/track-catalog.js';
import { Catalog, type CatalogRow } from '../../src/engine/catalog.js';
import { fsetxattr } from '../../src/kernel/libc.js';
import { encodeRecord, XATTR_STATE, type StateRecord } from '../../src/record/state-record.js';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { silentLogger } from '../../src/log.js';

let fs: LoopFs;
before(() => {
  fs = mountLoopFs('ext4', 64);
});
after(() => fs.unmount());

function archive(path: string, content: string, key = 'ab/key'): StateRecord {
  writeFileSync(path, content);
  const st = statSync(path, { bigint: true });
  const rec: StateRecord = {
    v: 1, state: 'archived', pinned: false, gen: 1,
    copy: { tier: 't', key, size: Number(st.size), mtimeNs: st.mtimeNs.toString(), sha256: '0', archivedAt: 1, chunk: 4 << 20 },
  };
  const fd = openSync(path, 'r');
  try {
    fsetxattr(fd, XATTR_STATE, encodeRecord(rec), path);
  } finally {
    closeSync(fd);
  }
  return rec;
}

const sh = (script: string, ...args: string[]) => execFileSync('sh', ['-c', script, 'sh', ...args]);

/** Polls until cond; the cap only keeps a broken tracker from hanging the suite (not a speed assertion). */
async function until(what: string, cond: () => boolean, capMs = 10_000): Promise<void> {
  const end = Date.now() + capMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`);
    await sleep(20);
  }
}

function collect(root: string) {
  const seen = { dirty: [] as DirtyFile[], deleted: [] as DeletedFile[], renamed: [] as RenamedEntry[], overflows: 0 };
  const t = new ChangeTracker({
    roots: [root],
    log: silentLogger,
    onDirty: (f) => void seen.dirty.push(f),
    onDeleted: (d) => void seen.deleted.push(d),
    onRenamed: (r) => void seen.renamed.push(r),
    onOverflow: () => void seen.overflows++,
  });
  t.start();
  return { t, seen };
}

describe('change tracking with FID events (ext4)', () => {
  test('a writer that keeps the file open is seen before it closes; our own writes are ignored', async () => {
    const root = join(fs.dir, 'open');
    mkdirSync(root);
    const held = join(root, 'held.log');
    const mine = join(root, 'mine.dat');
    archive(held, 'start\n');
    archive(mine, 'mine\n');
    const { t, seen } = collect(root);
    const child = spawn(process.execPath, ['-e', `const fs=require('fs');const fd=fs.openSync(process.argv[1],'a');fs.writeSync(fd,'more\\n');process.stdin.on('data',()=>{});process.stdin.on('end',()=>fs.closeSync(fd));`, held], { stdio: ['pipe', 'ignore', 'inherit'] });
    try {
      appendFileSync(mine, 'by the tracker process itself\n'); // like the engine's punch/futimens: never dirty
      await until('the held file reported dirty', () => seen.dirty.length > 0);
      assert.equal(child.exitCode, null, 'the writer still holds the file open');
      assert.deepEqual(seen.dirty.map((f) => f.path), [held]);
      assert.equal(seen.dirty[0]!.size, 'start\nmore\n'.length);
    } finally {
      child.stdin!.end();
      await new Promise((r) => child.on('exit', r));
      t.stop();
    }
    await sleep(300);
    assert.ok(seen.dirty.every((f) => f.path !== mine), 'own-process write never reported');
  });

  test('delete: the last name going is a delete (with its inode); removing one hard link of a living inode is not', async () => {
    const root = join(fs.dir, 'del');
    mkdirSync(root);
    const a = join(root, 'a.bin');
    archive(a, 'aaaa');
    sh('ln "$1" "$2"', a, join(root, 'a-link'));
    const ino = statSync(a).ino;
    const { t, seen } = collect(root);
    try {
      sh('rm "$1"', join(root, 'a-link'));
      sh('echo x > "$1"; rm "$1"', join(root, 'marker')); // an unmanaged delete that follows
      await until('the marker delete', () => seen.deleted.some((d) => d.path === join(root, 'marker')));
      assert.ok(!seen.deleted.some((d) => d.ino === ino), 'one hard link removed: not a delete');
      assert.deepEqual(seen.renamed, [{ dev: statSync(root).dev, ino, from: join(root, 'a-link'), to: a, dir: false, linkRemoved: true }], 'a row at the removed name may move to the remaining one');
      sh('rm "$1"', a);
      await until('a.bin deleted', () => seen.deleted.some((d) => d.ino === ino));
      const d = seen.deleted.find((x) => x.ino === ino)!;
      assert.equal(d.path, a);
      assert.equal(d.dev, statSync(root).dev);
    } finally {
      t.stop();
    }
  });

  test('renames: a file, a directory, one onto a managed file (whose inode then is gone)', async () => {
    const root = join(fs.dir, 'ren');
    mkdirSync(join(root, 'dir'), { recursive: true });
    const f = join(root, 'f.bin');
    const inDir = join(root, 'dir', 'g.bin');
    const victim = join(root, 'victim.bin');
    archive(f, 'ffff');
    archive(inDir, 'gggg');
    archive(victim, 'vvvv');
    const fIno = statSync(f).ino;
    const victimIno = statSync(victim).ino;
    const dirIno = statSync(join(root, 'dir')).ino;
    const { t, seen } = collect(root);
    try {
      sh('mv "$1" "$2"', f, join(root, 'f2.bin'));
      sh('mv "$1" "$2"', join(root, 'dir'), join(root, 'dir2'));
      sh('mv "$1" "$2"', join(root, 'f2.bin'), victim);
      await until('three renames', () => seen.renamed.length >= 3);
      const [r1, r2, r3] = seen.renamed;
      assert.deepEqual(r1, { dev: statSync(root).dev, ino: fIno, from: f, to: join(root, 'f2.bin'), dir: false });
      assert.deepEqual(r2, { dev: statSync(root).dev, ino: dirIno, from: join(root, 'dir'), to: join(root, 'dir2'), dir: true });
      // The file's own path is resolved when the event is handled: it is already where the third rename put it.
      assert.equal(r3!.ino, fIno);
      assert.equal(r3!.to, victim);
      await until('the replaced inode deleted', () => seen.deleted.some((d) => d.ino === victimIno));
    } finally {
      t.stop();
    }
  });

  test('queue overflow: logged and onOverflow called', () => {
    const root = join(fs.dir, 'flood');
    mkdirSync(root);
    writeFileSync(join(root, 'f0'), '');
    const { t, seen } = collect(root);
    try {
      // 20000 renames to new names while this thread is blocked: nothing reads, events with
      // different names do not merge, the 16384-event queue overflows.
      execFileSync(process.execPath, ['-e', `const fs=require('fs');const d=process.argv[1];for(let i=0;i<20000;i++)fs.renameSync(d+'/f'+i,d+'/f'+(i+1));`, root]);
    } catch (e) {
      t.stop();
      throw e;
    }
    return until('overflow seen', () => seen.overflows > 0, 20_000).finally(() => t.stop());
  });
});

describe('what tracking does to the catalog', () => {
  const row = (ino: number, path: string, extra: Partial<CatalogRow> = {}): CatalogRow => ({
    dev: 9, ino, path, state: 'released', pinned: false, tier: 't', key: `k${ino}`, size: 10, sha256: null, archivedAt: 1, updatedAt: 1, ...extra,
  });

  test('delete by inode or by path; rename of a file, of a directory (names with % and _), onto a managed file', () => {
    const cat = new Catalog(join(fs.scratch, 'cat', 'catalog.db'));
    try {
      cat.upsert(row(1, '/m/a'));
      cat.upsert(row(2, '/m/b'));
      cat.upsert(row(3, '/m/d%_/x'));
      cat.upsert(row(4, '/m/dX_/y'));
      cat.upsert(row(5, '/m/d%_/sub/z'));
      cat.upsert(row(6, '/m/e'));
      trackDeleted(cat, { dev: 9, ino: 1, path: null }, 1000, silentLogger);
      trackDeleted(cat, { dev: 9, ino: null, path: '/m/b' }, 2000, silentLogger);
      assert.equal(cat.get(9, 1)!.deletedAt, 1000);
      assert.equal(cat.get(9, 2)!.deletedAt, 2000);
      trackDeleted(cat, { dev: 9, ino: 1, path: null }, 5000, silentLogger);
      assert.equal(cat.get(9, 1)!.deletedAt, 1000, 'the first deletion time stays');
      assert.deepEqual([...cat.releasedFiles()].map((r) => r.ino).sort(), [3, 4, 5, 6], 'deleted rows are not marked at start-up');

      trackRenamed(cat, { dev: 9, ino: null, from: '/m/d%_', to: '/n/D', dir: true }, 3000, silentLogger);
      assert.equal(cat.get(9, 3)!.path, '/n/D/x');
      assert.equal(cat.get(9, 5)!.path, '/n/D/sub/z');
      assert.equal(cat.get(9, 4)!.path, '/m/dX_/y', 'not matched by a LIKE-style wildcard');
      trackRenamed(cat, { dev: 9, ino: 4, from: '/m/dX_/y', to: '/out/of/roots', dir: false }, 3000, silentLogger);
      assert.equal(cat.get(9, 4)!.path, '/out/of/roots', 'kept and moved: the key lives in the xattr');
      trackRenamed(cat, { dev: 9, ino: 4, from: '/out/of/roots', to: '/m/e', dir: false }, 4000, silentLogger);
      // The replaced inode may live on under another name (hard link): its own ATTRIB event
      // decides (trackDeleted when gone, trackAlive when alive), not the rename.
      assert.equal(cat.get(9, 6)!.deletedAt, null, 'replaced by the rename: not deleted by it');
      assert.equal(cat.get(9, 4)!.path, '/m/e');

      // One hard link removed: the row moves only if it named the removed link.
      cat.upsert(row(8, '/m/link1'));
      trackRenamed(cat, { dev: 9, ino: 8, from: '/m/link2', to: '/m/link3', dir: false, linkRemoved: true }, 5000, silentLogger);
      assert.equal(cat.get(9, 8)!.path, '/m/link1');
      trackRenamed(cat, { dev: 9, ino: 8, from: '/m/link1', to: '/m/link3', dir: false, linkRemoved: true }, 5000, silentLogger);
      assert.equal(cat.get(9, 8)!.path, '/m/link3');
      assert.equal(cat.get(9, 8)!.deletedAt, null);

      // A reused inode number comes back to life when the engine records it again.
      cat.upsert(row(1, '/m/new', { state: 'archived' }));
      assert.equal(cat.get(9, 1)!.deletedAt, null);
    } finally {
      cat.close();
    }
  });

  test('a rename onto one name of a hard-linked file: the row moves to the name the inode still has, only to one that holds it', () => {
    const dir = join(fs.dir, 'relink');
    mkdirSync(dir);
    const [a, b, c] = ['a', 'b', 'c'].map((n) => join(dir, n)) as [string, string, string];
    archive(a, 'released inode', 'ab/k-a');
    sh('ln "$1" "$2"', a, b);
    const st = statSync(a);
    const cat = new Catalog(join(fs.scratch, 'cat-relink', 'catalog.db'));
    try {
      cat.upsert(row(st.ino, a, { dev: st.dev, key: 'ab/k-a' }));
      const alive = { dev: st.dev, ino: st.ino };
      assert.equal(trackAlive(cat, { ...alive, path: b }, silentLogger), false, 'its row names a link still there: unchanged');
      assert.equal(cat.get(st.dev, st.ino)!.path, a);
      writeFileSync(c, 'replacement');
      sh('mv "$1" "$2"', c, a);
      assert.equal(trackAlive(cat, { ...alive, path: join(dir, 'nowhere') }, silentLogger), false, 'a path that does not hold the inode: unchanged');
      assert.equal(trackAlive(cat, { ...alive, path: b }, silentLogger), true);
      const r = cat.get(st.dev, st.ino)!;
      assert.equal(r.path, b);
      assert.equal(r.deletedAt, null);
      assert.deepEqual([...cat.releasedFiles()].map((x) => x.path), [b], 'start-up marking opens the remaining name');
    } finally {
      cat.close();
    }
  });

  test('a late delete event of an earlier file with the same inode number leaves the newer file\'s row alone', () => {
    const dir = join(fs.dir, 'reuse');
    mkdirSync(dir);
    const f = join(dir, 'f');
    archive(f, 'newer file, released since', 'ab/k-new');
    const st = statSync(f);
    const cat = new Catalog(join(fs.scratch, 'cat-reuse', 'catalog.db'));
    try {
      // The engine rewrote the row when it released the newer file that got this number.
      cat.upsert(row(st.ino, f, { dev: st.dev, key: 'ab/k-new' }));
      trackDeleted(cat, { dev: st.dev, ino: st.ino, path: join(dir, 'old-name') }, 5000, silentLogger);
      assert.equal(cat.get(st.dev, st.ino)!.deletedAt, null, 'the file at the row\'s path has this inode and this key: alive');
      // The row still names the earlier file's copy (the newer file is not managed yet, or
      // has another copy): the delete is the earlier file's, its row is marked.
      cat.upsert(row(st.ino, f, { dev: st.dev, key: 'ab/k-old' }));
      trackDeleted(cat, { dev: st.dev, ino: st.ino, path: null }, 6000, silentLogger);
      assert.equal(cat.get(st.dev, st.ino)!.deletedAt, 6000);
      // A row whose path holds nothing: a plain delete.
      cat.upsert(row(st.ino + 1000, join(dir, 'gone'), { dev: st.dev, key: 'ab/k-gone' }));
      trackDeleted(cat, { dev: st.dev, ino: st.ino + 1000, path: null }, 7000, silentLogger);
      assert.equal(cat.get(st.dev, st.ino + 1000)!.deletedAt, 7000);
    } finally {
      cat.close();
    }
  });

  test('a row marked deleted whose file a reconcile scan finds alive (same key) is revived', async () => {
    const { reconcile } = await import('../../src/reconcile/reconcile.js');
    const dir = join(fs.dir, 'revive');
    mkdirSync(dir);
    const f = join(dir, 'f');
    const rec = archive(f, 'alive after all', 'ab/k-alive');
    const st = statSync(f);
    const cat = new Catalog(join(fs.scratch, 'cat-revive', 'catalog.db'));
    try {
      cat.upsert(row(st.ino, f, { dev: st.dev, key: 'ab/k-alive', state: 'archived', size: st.size, sha256: rec.copy!.sha256, archivedAt: rec.copy!.archivedAt }));
      cat.markDeleted(st.dev, st.ino, 1000);
      const r = await reconcile({ roots: [dir], dryRun: false, hash: false }, { catalog: cat, log: silentLogger });
      assert.equal(r.rows.updated, 1);
      assert.equal(cat.get(st.dev, st.ino)!.deletedAt, null, 'gc would otherwise collect the object of a living file');
    } finally {
      cat.close();
    }
  });

  test('an older catalog without deleted_at gets the column, its rows live', async () => {
    const { openSqlite } = await import('../../src/record/sqlite.js');
    const file = join(fs.scratch, 'old', 'catalog.db');
    mkdirSync(join(fs.scratch, 'old'));
    const db = openSqlite(file);
    db.exec(`CREATE TABLE files (dev INTEGER NOT NULL, ino INTEGER NOT NULL, path TEXT NOT NULL, state TEXT NOT NULL,
      pinned INTEGER NOT NULL DEFAULT 0, tier TEXT, key TEXT, size INTEGER NOT NULL, sha256 TEXT, archived_at INTEGER,
      updated_at INTEGER NOT NULL, PRIMARY KEY (dev, ino))`);
    db.prepare("INSERT INTO files VALUES (9, 1, '/m/a', 'released', 0, 't', 'k', 5, NULL, 1, 1)").run();
    db.close();
    const cat = new Catalog(file);
    try {
      assert.equal(cat.get(9, 1)!.deletedAt, null);
      assert.equal([...cat.releasedFiles()].length, 1);
      assert.equal(cat.markDeleted(9, 1, 77), true);
      assert.equal(cat.get(9, 1)!.deletedAt, 77);
      assert.equal([...cat.releasedFiles()].length, 0);
    } finally {
      cat.close();
    }
    new Catalog(file).close(); // opening again: the column is there, no second ALTER
  });

  test('dirty once per copy: a writer that keeps writing is counted once', () => {
    const cat = new Catalog(join(fs.scratch, 'cat2', 'catalog.db'));
    try {
      const rec: StateRecord = { v: 1, state: 'archived', pinned: false, gen: 1, copy: { tier: 't', key: 'k', size: 1, mtimeNs: '1', sha256: '0', archivedAt: 1, chunk: 1 } };
      const f: DirtyFile = { path: '/m/f', dev: 9, ino: 7, size: 2, mtimeNs: '2', record: rec };
      assert.equal(trackDirty(cat, f, 1, silentLogger), true);
      assert.equal(trackDirty(cat, { ...f, size: 3 }, 2, silentLogger), false);
      assert.equal(cat.get(9, 7)!.state, 'dirty');
    } finally {
      cat.close();
    }
  });
});
