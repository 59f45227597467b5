// `tier reconcile` and the daemon's reconciliation passes, end to end on loop-mounted ext4
// with the real CLI and daemon: what changed while the daemon was down (a size change, a
// same-size rewrite with its mtime put back, a rename, a delete) is found, marked dirty,
// the catalog fixed, and the next `tier apply` re-archives the new bytes; a dry run
// changes nothing; a released file is never read.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, lstatSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openSqlite } from '../../src/record/sqlite.js';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { daemonLayout, pattern, runCli, startDaemon, writePolicy, type DaemonProc } from '../helpers/daemon.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { futimens, lgetxattr, nsToTimespec } from '../../src/kernel/libc.js';
import { reconcile } from '../../src/reconcile/reconcile.js';
import { silentLogger } from '../../src/log.js';

const SIZE = 2 * 1024 * 1024 + 77;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const rawRecord = (p: string) => lgetxattr(p, XATTR_STATE);
const record = (p: string) => decodeRecord(rawRecord(p));

interface Row {
  path: string;
  state: string;
  ino: number;
  deleted_at: number | null;
  ctime_ns: string | null;
}

/** Same-size rewrite in place, then mtime put back to what it was. */
function rewriteKeepingMtime(p: string, b: Buffer): void {
  const st = lstatSync(p, { bigint: true });
  const fd = openSync(p, 'r+');
  try {
    writeSync(fd, b, 0, b.length, 0);
    futimens(fd, nsToTimespec(st.atimeNs), nsToTimespec(st.mtimeNs), p);
  } finally {
    closeSync(fd);
  }
}

describe('reconciliation after the daemon was down (ext4)', () => {
  let fs: LoopFs;
  let L: ReturnType<typeof daemonLayout>;
  let policy: string;
  let d: DaemonProc | undefined;
  const p = (n: string) => join(L.data, n);
  const rows = (): Row[] => {
    const db = openSqlite(join(L.stateDir, 'catalog.db'), { readonly: true });
    try {
      return db.prepare('SELECT path, state, ino, ctime_ns, deleted_at FROM files ORDER BY path').all() as Row[];
    } finally {
      db.close();
    }
  };
  const rowOf = (path: string) => rows().find((r) => r.path === path);
  const reconcileJson = async (...args: string[]) => {
    const r = await runCli(['reconcile', '--state-dir', L.stateDir, '--json', ...args]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return JSON.parse(r.stdout);
  };
  const daemon = async (extra: string[] = ['--reconcile-interval', '0']) => {
    d = startDaemon([policy], L.stateDir, extra);
    await d.ready;
    return d;
  };
  const stop = async () => {
    if (d) assert.equal((await d.stop()).code, 0, d.stderrText());
    d = undefined;
  };

  before(async () => {
    fs = mountLoopFs('ext4');
    L = daemonLayout(fs);
    policy = writePolicy(fs.scratch, L.data, L.tierDir, 'size >= 0B -> archive to slow', '', 'archive.hsmpolicy');
    for (const [i, n] of ['grown', 'rewritten', 'same', 'renamed', 'deleted', 'released'].entries()) writeFileSync(p(n), pattern(SIZE, i + 1));
    writeFileSync(p('plain'), 'never archived');
    await daemon();
    const a = await runCli(['archive', ...['grown', 'rewritten', 'same', 'renamed', 'deleted'].map(p), '--config', policy, '--state-dir', L.stateDir]);
    assert.equal(a.code, 0, a.stdout + a.stderr);
    const r = await runCli(['release', p('released'), '--config', policy, '--state-dir', L.stateDir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await stop();
    // While the daemon is down:
    appendFileSync(p('grown'), 'more');
    rewriteKeepingMtime(p('rewritten'), pattern(SIZE, 99));
    renameSync(p('renamed'), p('renamed-now'));
    unlinkSync(p('deleted'));
  });
  after(async () => {
    await stop().catch(() => {});
    fs?.unmount();
  });

  test('the catalog recorded ctime after the engine\'s last change', () => {
    for (const n of ['same', 'released']) {
      const st = lstatSync(p(n), { bigint: true });
      assert.equal(rowOf(p(n))?.ctime_ns, st.ctimeNs.toString(), n);
    }
  });

  test('--dry-run (no daemon) reports everything and changes nothing: records and catalog byte-identical', async () => {
    const names = ['grown', 'rewritten', 'same', 'renamed-now', 'released'];
    const recs = names.map((n) => rawRecord(p(n)));
    const cat = readFileSync(join(L.stateDir, 'catalog.db'));
    const wal = join(L.stateDir, 'catalog.db-wal');
    const walBefore = existsSync(wal) ? readFileSync(wal) : null;
    const r = await reconcileJson('--config', policy, '--hash', '--dry-run');
    assert.equal(r.dryRun, true);
    assert.equal(r.checked, 5);
    assert.deepEqual([r.dirty.bySizeMtime, r.dirty.byHash], [1, 1]);
    assert.deepEqual(
      r.dirty.files.map((f: { path: string; how: string }) => [f.path, f.how]).sort(),
      [[p('grown'), 'size/mtime'], [p('rewritten'), 'hash']],
    );
    // Hashed: the archived files whose ctime moved, the rewrite and the rename (a rename
    // moves ctime too); not 'same' (ctime as the engine left it), not the released file.
    assert.equal(r.hashed.files, 2);
    assert.equal(r.hashed.bytes, 2 * SIZE);
    // grown and rewritten change state, renamed-now changes path; deleted's row goes.
    assert.deepEqual(r.rows, { added: 0, updated: 3, removed: 1 });
    assert.deepEqual(r.scanErrors, []);
    names.forEach((n, i) => assert.ok(rawRecord(p(n))!.equals(recs[i]!), `${n}: record unchanged`));
    assert.ok(readFileSync(join(L.stateDir, 'catalog.db')).equals(cat), 'catalog.db byte-identical');
    if (walBefore) assert.ok(readFileSync(wal).equals(walBefore));
    assert.equal(lstatSync(p('released')).blocks, 0, 'the released file was not read');
  });

  test('--json shape', async () => {
    const r = await reconcileJson('--config', policy, '--dry-run');
    assert.deepEqual(Object.keys(r).sort(), ['checked', 'dirty', 'dryRun', 'hashed', 'rows', 'scanErrors', 'skipped', 'unverified']);
    assert.deepEqual(Object.keys(r.dirty).sort(), ['byHash', 'bySizeMtime', 'files']);
    assert.deepEqual(Object.keys(r.hashed).sort(), ['bytes', 'files']);
    assert.deepEqual(Object.keys(r.rows).sort(), ['added', 'removed', 'updated']);
    // Without --hash the rewrite (and the rename) are only suspected (ctime moved), not marked.
    assert.deepEqual([r.dirty.bySizeMtime, r.dirty.byHash, r.unverified, r.hashed.files], [1, 0, 2, 0]);
  });

  test('through the daemon: --hash marks the rewrite dirty, fixes renamed and deleted rows; never reads a released file', async () => {
    await daemon();
    const text = await runCli(['reconcile', '--state-dir', L.stateDir, '--hash']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /dirty: 2 found \(1 by size\/mtime, 1 by hash\)/);
    assert.match(text.stdout, /catalog rows: 0 added, 3 updated, 1 gone /);
    assert.equal(record(p('rewritten'))?.state, 'dirty', 'the record says dirty');
    assert.equal(rowOf(p('rewritten'))?.state, 'dirty');
    assert.equal(rowOf(p('grown'))?.state, 'dirty');
    const ren = lstatSync(p('renamed-now'));
    assert.equal(rows().find((r) => r.ino === ren.ino)?.path, p('renamed-now'), 'the row follows the rename');
    assert.ok(rows().find((r) => r.path === p('deleted'))?.deleted_at, 'the deleted file\'s row is marked deleted (its retention runs)');
    assert.equal(lstatSync(p('released')).blocks, 0, 'the released file was not read');
    assert.equal(record(p('released'))?.state, 'released');
    // Idempotent: a second pass finds nothing new to fix.
    const again = await reconcileJson('--hash');
    assert.deepEqual(again.rows, { added: 0, updated: 0, removed: 0 });
    assert.deepEqual([again.dirty.bySizeMtime, again.dirty.byHash], [0, 0], 'what the catalog knows is not found again');
    assert.equal(again.hashed.files, 0, 'neither the dirty file nor the verified rename is hashed again');
  });

  test('the next tier apply re-archives the new bytes', async () => {
    const old = { grown: record(p('grown'))!.copy!, rewritten: record(p('rewritten'))!.copy! };
    const r = await runCli(['apply', policy, '--state-dir', L.stateDir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const n of ['grown', 'rewritten'] as const) {
      const rec = record(p(n))!;
      assert.equal(rec.state, 'archived', n);
      assert.notEqual(rec.copy!.key, old[n].key, `${n}: a new copy`);
      assert.equal(rec.copy!.sha256, sha(readFileSync(p(n))), `${n}: the copy holds the new bytes`);
    }
    const tierCopy = readFileSync(join(L.tierDir, record(p('rewritten'))!.copy!.key));
    assert.ok(tierCopy.equals(pattern(SIZE, 99)), 'the tier object is the rewritten content');
    await stop();
  });

  test('the daemon reconciles at start: a rewrite is found by hash; a released file renamed while down is marked and reads back', async () => {
    rewriteKeepingMtime(p('same'), pattern(SIZE, 77));
    renameSync(p('released'), p('released-now'));
    const dd = await daemon([]); // default interval: a pass right after ready
    const done = await dd.waitLog((l) => l.msg === 'reconcile pass done');
    assert.equal(done.dirtyByHash, 1, JSON.stringify(done));
    assert.equal(record(p('same'))?.state, 'dirty');
    assert.equal(lstatSync(p('released-now')).blocks, 0);
    await dd.waitLog((l) => l.msg === 'released file found by reconcile: marked' && l.path === p('released-now'));
    assert.ok((await readFile(p('released-now'))).equals(pattern(SIZE, 6)), 'reads its bytes, not zeros');
    await stop();
  });

  test('while the engine migrates (yieldTo), nothing is hashed: the files are left to the next pass', async () => {
    // No catalog: no recorded ctime, so every archived file is a candidate for hashing.
    const opts = { roots: [L.data], dryRun: true, hash: true };
    const busy = await reconcile({ ...opts, yieldTo: () => true }, { catalog: null, log: silentLogger });
    const idle = await reconcile({ ...opts, yieldTo: () => false }, { catalog: null, log: silentLogger });
    assert.ok(idle.hashed.files >= 3, JSON.stringify(idle));
    assert.equal(busy.hashed.files, 0);
    assert.equal(busy.unverified, idle.hashed.files);
    assert.ok(busy.skipped.every((x) => /engine is migrating/.test(x.why)));
  });
});
