// Import from a local-directory tier through a real daemon, then what tier does with the
// imported files: eviction is release by punching only (no upload), a locally changed
// file is archived under the tier's own key (the imported object untouched), gc never
// deletes an imported object (even one whose key has the engine's shape), and a replaced
// object (new mtime) gives EIO.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { applyActions, pattern, readAt, REPO, runCli, startDaemon, within, type DaemonProc } from '../helpers/daemon.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { tierImport } from './helpers.js';

const rec = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));
const ENGINE_SHAPED = 'ab/abcdef01-2345-4678-9abc-def012345678';

/** Every file under dir (relative paths), sorted. */
function tree(dir: string): string[] {
  return execFileSync('find', ['.', '-type', 'f'], { cwd: dir, encoding: 'utf8' }).trim().split('\n').filter(Boolean).sort();
}

describe('tier import from a local tier; eviction, archiving, gc', () => {
  let fs: LoopFs;
  let dd: DaemonProc;
  let remote: string;
  let policy: string;
  let gcPolicy: string;
  let stateDir: string;
  let dest: string;
  const files = new Map<string, Buffer>([
    ['a.bin', pattern(3 * 1024 * 1024 + 5, 1)],
    ['b.txt', Buffer.from('remote b\n')],
    ['sub dir/c ✓.txt', pattern(70_000, 2)],
    [ENGINE_SHAPED, Buffer.from('an object whose key looks like one tier wrote')],
    ['d.bin', pattern(2 * 1024 * 1024, 4)],
  ]);

  before(async () => {
    fs = mountLoopFs('ext4');
    remote = join(fs.scratch, 'remote');
    for (const [k, v] of files) {
      mkdirSync(join(remote, k, '..'), { recursive: true });
      writeFileSync(join(remote, k), v);
      utimesSync(join(remote, k), new Date(1_700_000_000_000), new Date(1_700_000_000_000));
    }
    const data = join(fs.dir, 'data');
    dest = join(data, 'mirror');
    mkdirSync(dest, { recursive: true });
    stateDir = join(fs.scratch, 'state');
    policy = join(fs.scratch, 'p.hsmpolicy');
    // The daemon's gc keeps 30 days; `tier gc` runs with a copy that keeps 1 s.
    const text = (keep: string) =>
      `tier slow { local "${remote}" chunk 1MiB readahead 1MiB }\nfileset data { root "${data}" }\n` +
      `policy p on data {\n  keep_deleted ${keep}\n  rule all: size >= 0B -> release to slow\n}\n`;
    writeFileSync(policy, text('30d'));
    gcPolicy = join(fs.scratch, 'gc.hsmpolicy');
    writeFileSync(gcPolicy, text('1s'));
    dd = startDaemon([policy], stateDir);
    await dd.ready;
  });
  after(async () => {
    await dd?.stop();
    fs?.unmount();
  });

  test('--dry-run: says what it would create, creates nothing', async () => {
    const r = await tierImport(['slow', dest, '--config', policy, '--state-dir', stateDir, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.summary?.counts.created, files.size);
    assert.deepEqual(readdirSync(dest), []);
  });

  test('import: released files with the listing\'s sizes and mtimes', async () => {
    const r = await tierImport(['slow', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.summary?.counts.created, files.size, r.stdout);
    for (const [k, v] of files) {
      const st = statSync(join(dest, k));
      assert.equal(st.size, v.length);
      assert.equal(st.blocks, 0);
      assert.equal(st.mtimeMs, 1_700_000_000_000);
      assert.equal(rec(join(dest, k))?.copy?.foreign, 'lm:1700000000000');
    }
  });

  test('read whole and unchanged, then released again by punching only; changed here: archived under its own key', async () => {
    const a = join(dest, 'a.bin');
    assert.ok(readFileSync(a).equals(files.get('a.bin')!));
    await within('a.bin whole, hashed and archived', 5000, () => rec(a)?.state === 'archived');
    assert.match(rec(a)?.copy?.sha256 ?? '', /^[0-9a-f]{64}$/);
    const b = join(dest, 'b.txt');
    assert.equal(readFileSync(b, 'utf8'), 'remote b\n');
    await within('b.txt archived', 5000, () => rec(b)?.state === 'archived');
    appendFileSync(b, 'local line\n');
    // Dirty: the record keeps the copy, the size and mtime no longer match it; tracking says so.
    await dd.waitLog((l) => l.msg === 'archived file changed: dirty' && l.path === b);
    const before = tree(remote);
    const acts = await applyActions(policy, stateDir);
    assert.equal(acts.get('mirror/a.bin')?.status, 'done', JSON.stringify([...acts]));
    assert.equal(acts.get('mirror/a.bin')?.uploaded, 0, 'eviction: no upload');
    assert.equal(statSync(a).blocks, 0);
    assert.equal(rec(a)?.state, 'released');
    assert.equal(rec(a)?.copy?.key, 'a.bin');
    assert.equal(acts.get('mirror/b.txt')?.status, 'done');
    assert.ok((acts.get('mirror/b.txt')?.uploaded ?? 0) > 0);
    const bKey = rec(b)?.copy?.key ?? '';
    assert.notEqual(bKey, 'b.txt');
    assert.equal(rec(b)?.copy?.foreign, undefined, 'an ordinary local file now');
    // The imported objects are as they were; only b's own new copy (and its sums/meta) appeared.
    for (const [k, v] of files) assert.ok(readFileSync(join(remote, k)).equals(v), k);
    const added = tree(remote).filter((f) => !before.includes(f));
    assert.ok(added.every((f) => f.startsWith(`./${bKey}`)), added.join(' '));
    // Read back: a from the imported object, b from its own copy.
    assert.ok(readFileSync(a).equals(files.get('a.bin')!));
    assert.equal(readFileSync(b, 'utf8'), 'remote b\nlocal line\n');
  });

  test('gc never deletes an imported object, whatever became of its file', async () => {
    rmSync(join(dest, ENGINE_SHAPED));
    rmSync(join(dest, 'sub dir/c ✓.txt'));
    await new Promise((r) => setTimeout(r, 300)); // change tracking marks the rows deleted
    for (let i = 0; i < 2; i++) {
      const r = await runCli(['gc', '--config', gcPolicy, '--state-dir', stateDir, '--json']);
      assert.equal(r.code, 0, r.stderr);
      await new Promise((res) => setTimeout(res, 1200)); // past keep_deleted 1s
    }
    assert.ok(existsSync(join(remote, ENGINE_SHAPED)));
    assert.ok(existsSync(join(remote, 'sub dir/c ✓.txt')));
  });

  test('an object replaced on the tier: EIO, and the next import refreshes the file', async () => {
    const a = join(dest, 'd.bin');
    const v2 = pattern(files.get('d.bin')!.length, 9);
    writeFileSync(join(remote, 'd.bin'), v2);
    await assert.rejects(readAt(a, 0, 10), /EIO/);
    const r = await tierImport(['slow', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.summary?.counts.refreshed, 1, r.stdout);
    assert.ok(readFileSync(a).equals(v2));
    assert.ok(readdirSync(dest).every((n) => !n.startsWith('.tier-import.')));
  });

  test('a local file where an object would go is a conflict, left alone; the human summary says so', async () => {
    writeFileSync(join(dest, 'user.txt'), 'mine');
    writeFileSync(join(remote, 'user.txt'), 'theirs');
    const r = await runCli(['import', 'slow', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^conflict +${join(dest, 'user.txt')}: `, 'm'));
    // b.txt too: changed here and archived under its own key, it is an ordinary file now.
    assert.match(r.stdout, /^imported \d+ objects .* 2 conflicts,/m);
    assert.equal(readFileSync(join(dest, 'user.txt'), 'utf8'), 'mine');
    assert.equal(rec(join(dest, 'user.txt')), null);
  });

  test('imported files are marked again when the daemon restarts (catalog rows)', async () => {
    const v = pattern(1_500_000, 11);
    writeFileSync(join(remote, 'late.bin'), v);
    const r = await tierImport(['slow', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.summary?.counts.created, 1, r.stdout);
    await dd.stop();
    dd = startDaemon([policy], stateDir);
    await dd.ready;
    assert.ok(readFileSync(join(dest, 'late.bin')).equals(v), 'recalled, not zeros');
  });

  test('owner and mode: the directory\'s owner, 0644/0755 by default; --uid/--gid/--file-perms/--dir-perms', async () => {
    const data = join(fs.dir, 'data');
    const mine = join(data, 'own-default');
    mkdirSync(mine);
    chownSync(mine, 1234, 1235);
    const r = await tierImport(['slow', mine, '--config', policy, '--state-dir', stateDir, '--prefix', 'sub dir']);
    assert.equal(r.summary?.counts.created, 1, r.stdout + r.stderr);
    const f = statSync(join(mine, 'c ✓.txt'));
    assert.deepEqual([f.uid, f.gid, f.mode & 0o7777], [1234, 1235, 0o644]);
    const r2 = await tierImport(['slow', join(mine, 'x'), '--config', policy, '--state-dir', stateDir]).catch(() => null);
    assert.notEqual(r2?.code, 0, 'DIR must exist');
    mkdirSync(join(mine, 'x'));
    chownSync(join(mine, 'x'), 1234, 1235);
    const r2b = await tierImport(['slow', join(mine, 'x'), '--config', policy, '--state-dir', stateDir]);
    assert.equal(r2b.code, 0, r2b.stderr + r2b.stdout);
    const sub = statSync(join(mine, 'x', 'sub dir'));
    assert.deepEqual([sub.uid, sub.gid, sub.mode & 0o7777], [1234, 1235, 0o755], 'a directory made by import');
    const set = join(data, 'own-set');
    mkdirSync(set);
    const r3 = await tierImport(['slow', set, '--config', policy, '--state-dir', stateDir, '--uid', '4321', '--gid', 'root', '--file-perms', '0640', '--dir-perms', '750']);
    assert.equal(r3.code, 0, r3.stderr + r3.stdout);
    const g = statSync(join(set, 'sub dir/c ✓.txt'));
    assert.deepEqual([g.uid, g.gid, g.mode & 0o7777], [4321, 0, 0o640]);
    const d = statSync(join(set, 'sub dir'));
    assert.deepEqual([d.uid, d.gid, d.mode & 0o7777], [4321, 0, 0o750]);
    assert.deepEqual([statSync(set).uid, statSync(set).mode & 0o777], [0, 0o755], 'DIR itself keeps its owner and mode');
    assert.ok(readFileSync(join(set, 'sub dir/c ✓.txt')).equals(files.get('sub dir/c ✓.txt')!), 'recalled whatever its mode');
    // Refused before anything is asked of the daemon: a clear message, no stack trace.
    const bad = await runCli(['import', 'slow', set, '--config', policy, '--state-dir', stateDir, '--file-perms', '4755']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--file-perms "4755": an octal mode of permission bits, at most 0777/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
    const who = await runCli(['import', 'slow', set, '--config', policy, '--state-dir', stateDir, '--uid', 'no-such-user-x']);
    assert.match(who.stderr, /--uid "no-such-user-x": no such user/);
  });

  test('a progress line on a TTY (cleared before the summary); none without one', async () => {
    const cmd = ['node', '--import', 'tsx', 'src/cli/main.ts', 'import', 'slow', dest, '--config', policy, '--state-dir', stateDir].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    const tty = execFileSync('script', ['-qec', cmd, '/dev/null'], { cwd: REPO, encoding: 'utf8' });
    // The progress line is cleared before any other line (conflicts print as they come) and
    // before the summary; nothing of it is left after the summary.
    assert.match(tty, /\r\x1b\[Klisted \d+ objects, [\d.]+ \w+\r\x1b\[K/);
    assert.match(tty, /(^|\n|\r\x1b\[K)imported \d+ objects[^\r\x1b]*\r?\n$/);
    const plain = await runCli(['import', 'slow', dest, '--config', policy, '--state-dir', stateDir]);
    assert.doesNotMatch(plain.stdout, /listed|\x1b/);
    assert.match(plain.stdout, /^imported \d+ objects/m);
  });
});
