import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite } from '../../src/record/sqlite.js';
import { RecallLog, openRecallLog, recallLogPath } from '../../src/reports/recall-log.js';

const H = 3_600_000;
let dir: string;
let log: RecallLog;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tier-recall-log-'));
  log = openRecallLog(dir);
});
afterEach(() => {
  log.close();
  rmSync(dir, { recursive: true, force: true });
});

const rec = (time: number, path: string, bytes: number, extra: object = {}) => ({ time, path, bytes, latencyMs: 3, ...extra });

describe('recall log', () => {
  test('its own SQLite file in the state dir; rows survive close and reopen', () => {
    log.record(rec(1000, '/d/a', 10, { dev: 7, ino: 42, comm: 'cat', pid: 99 }));
    log.close();
    const db = openSqlite(recallLogPath(dir), { readonly: true });
    const rows = db.prepare('SELECT at, path, dev, ino, bytes, comm, pid, error FROM recalls').all();
    db.close();
    assert.deepEqual(rows, [{ at: 1000, path: '/d/a', dev: 7, ino: 42, bytes: 10, comm: 'cat', pid: 99, error: null }]);
    log = openRecallLog(dir);
    assert.equal(log.totals().recalls, 1);
  });

  test('recentlyRecalled: by path or by inode (a renamed file), only successful recalls, since a time', () => {
    const now = 100 * H;
    log.record(rec(now - 2 * H, '/d/old-name', 100, { dev: 1, ino: 5 }));
    log.record(rec(now - 10 * H, '/d/b', 100));
    log.record(rec(now - 1 * H, '/d/c', 0, { error: 'Timeout' }));
    assert.equal(log.recentlyRecalled({ path: '/d/old-name' }, now - 3 * H), now - 2 * H);
    assert.equal(log.recentlyRecalled({ path: '/d/new-name', dev: 1, ino: 5 }, now - 3 * H), now - 2 * H);
    assert.equal(log.recentlyRecalled({ dev: 1, ino: 6 }, now - 3 * H), null);
    assert.equal(log.recentlyRecalled({ path: '/d/b' }, now - 3 * H), null, 'older than the window');
    assert.equal(log.recentlyRecalled({ path: '/d/b' }, now - 11 * H), now - 10 * H);
    assert.equal(log.recentlyRecalled({ path: '/d/c' }, 0), null, 'a failed recall brought nothing back');
    const s = log.recalledSince(now - 3 * H);
    assert.deepEqual([...s.paths], ['/d/old-name']);
    assert.deepEqual([...s.inodes], ['1:5']);
  });

  test('top(n) ranks by count then bytes; totals count errors apart', () => {
    for (let i = 0; i < 3; i++) log.record(rec(i, '/d/hot', 1000));
    for (let i = 0; i < 2; i++) log.record(rec(i, '/d/warm', 5000));
    log.record(rec(5, '/d/big', 1 << 20));
    log.record(rec(6, '/d/cold2', 1 << 20));
    log.record(rec(7, '/d/bad', 0, { error: 'NotFound' }));
    assert.deepEqual(
      log.top(3).map((t) => [t.path, t.recalls, t.bytes, t.lastAt]),
      [
        ['/d/hot', 3, 3000, 2],
        ['/d/warm', 2, 10000, 1],
        ['/d/big', 1, 1 << 20, 5],
      ],
    );
    assert.deepEqual(log.totals(), { recalls: 7, bytes: 3000 + 10000 + 2 * (1 << 20), errors: 1, files: 4 });
    assert.equal(log.top(10, 5).length, 2);
  });

  test('buffered writes reach disk on flush, and many records go in batches', () => {
    for (let i = 0; i < 1000; i++) log.record(rec(i, `/d/f${i % 10}`, 1));
    log.flush();
    const db = openSqlite(recallLogPath(dir), { readonly: true });
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM recalls').get() as { n: number }).n, 1000);
    db.close();
  });

  test('prune drops entries older than the retention', () => {
    log.record(rec(10, '/d/a', 1));
    log.record(rec(20, '/d/a', 1));
    log.record(rec(30, '/d/a', 1));
    assert.equal(log.prune(25), 2);
    assert.equal(log.totals().recalls, 1);
  });

  test('an unusable file is an error naming the file', () => {
    const bad = join(dir, 'not-a-db');
    writeFileSync(bad, 'this is not sqlite, and long enough to be read as a header............');
    assert.throws(() => new RecallLog(bad), /recall log .*not-a-db: /);
  });
});
