// Released files under programs nobody here wrote, with the real daemon (`tier daemon` +
// `tier apply`) on loop ext4 and xfs and the local tier: fio in verify mode (random and
// whole reads, random writes into a released file), SQLite (the sqlite3 shell), git
// (fsck, log, a commit, a clone) and rsync. Each checks with its own means (fio's block
// headers, integrity_check, fsck) as well as ours (bytes against the originals), so a
// zero block, a stale chunk or a lost write fails either way.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { freshBucket, s3TestEnv } from '../helpers/rgw.js';
import { applyActions, daemonLayout, getMetrics, pattern, startDaemon, within, type DaemonProc } from '../helpers/daemon.js';

const MiB = 1024 * 1024;
const stateOf = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE))?.state ?? 'resident';
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) =>
    execFile(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const c = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof c === 'number' ? c : 1, stdout, stderr });
    }),
  );
}

async function ok(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(cmd, args, env);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout.slice(-2000)}`);
  return r.stdout;
}

/** Every regular file under `dir`, relative path -> bytes. */
function tree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.isFile()) out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/** The sum of a counter's samples in a Prometheus text page. */
function counter(page: string, name: string): number {
  let n = 0;
  for (const m of page.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) n += Number(m[1]);
  return n;
}

// fio's block headers carry a magic, the block's offset and a crc32c of the block: a read
// job with `verify` checks every block it reads (a zero block: "bad magic header 0").
const FIO_BS = 64 * 1024;
const FIO_SIZE = 32 * MiB;
const fio = (file: string, ...more: string[]) =>
  ok('fio', ['--name=j', `--filename=${file}`, `--bs=${FIO_BS}`, `--size=${FIO_SIZE}`, '--verify=crc32c', '--ioengine=psync', '--verify_state_save=0', '--output-format=terse', ...more]);

// Fixed identities and dates: the same repository, the same hashes, every run.
const GIT_ENV = {
  GIT_AUTHOR_NAME: 'A U Thor',
  GIT_AUTHOR_EMAIL: 'author@example.com',
  GIT_COMMITTER_NAME: 'A U Thor',
  GIT_COMMITTER_EMAIL: 'author@example.com',
  GIT_AUTHOR_DATE: '2026-01-01T00:00:00Z',
  GIT_COMMITTER_DATE: '2026-01-01T00:00:00Z',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

// The local tier on both filesystems; the S3 tier (its defaults: read-ahead in long GETs,
// committed in pieces) on ext4.
const SETUPS = [
  { type: 'ext4', tier: 'local' },
  { type: 'xfs', tier: 'local' },
  { type: 'ext4', tier: 's3' },
] as const;

for (const { type, tier } of SETUPS) {
  describe(`real programs on released files (${type}, ${tier} tier)`, () => {
    let fs: LoopFs;
    let d: DaemonProc;
    let data: string;
    let out: string;
    let policy: string;
    let stateDir: string;
    const fioRead = () => join(data, 'fio-read.dat');
    const fioWrite = () => join(data, 'fio-write.dat');
    const db = () => join(data, 'app.db');
    const repo = () => join(data, 'repo');
    const zip = () => join(data, 'members.zip');
    const log = () => join(data, 'app.log');
    let logText: string;
    let zipList: string;
    let fioWriteOrig: Buffer;
    let dbDump: string;
    let repoFiles: Map<string, Buffer>;
    let repoLog: string;
    const git = (dir: string, ...args: string[]) => ok('git', ['-C', dir, ...args], GIT_ENV);

    const applyAll = async () => {
      const acts = await applyActions(policy, stateDir);
      for (const [p, a] of acts) assert.equal(a.status, 'done', `${p}: ${JSON.stringify(a)}`);
      return acts;
    };

    before(async () => {
      fs = mountLoopFs(type, 320);
      ({ stateDir, data, policy } = daemonLayout(fs));
      if (tier === 's3') {
        const e = s3TestEnv();
        writeFileSync(
          policy,
          `tier slow { s3 bucket "${freshBucket(e, 'real-programs')}" prefix "t/" endpoint "${e.endpoint}" region "${e.region}" path_style true checksum when_required }\n` +
            `fileset data { root "${data}" }\npolicy p on data {\n  rule all: size >= 0B -> release to slow\n}\n`,
        );
      }
      out = join(fs.dir, 'out');
      mkdirSync(out);

      for (const f of [fioRead(), fioWrite()]) await fio(f, '--rw=write', '--do_verify=0');
      fioWriteOrig = readFileSync(fioWrite());

      // 60k rows of 300 random bytes and an index: about 25 MiB, a b-tree several levels deep.
      await ok('sqlite3', [
        db(),
        'CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, b BLOB);' +
          'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<60000) INSERT INTO t SELECT x, hex(randomblob(8)), randomblob(300) FROM c;' +
          'CREATE INDEX t_k ON t(k);',
      ]);
      dbDump = sha(await ok('sqlite3', [db(), '.dump']));

      // A repository with history: loose objects from later commits beside a pack from gc.
      mkdirSync(repo());
      await git(repo(), 'init', '-q', '-b', 'main');
      for (let c = 0; c < 12; c++) {
        for (let f = 0; f < 8; f++) {
          mkdirSync(join(repo(), `d${f % 3}`), { recursive: true });
          writeFileSync(join(repo(), `d${f % 3}`, `f${f}.bin`), pattern(20_000 + 7_000 * f + c * 311, c * 100 + f));
        }
        await git(repo(), 'add', '-A');
        await git(repo(), 'commit', '-q', '-m', `commit ${c}`);
        if (c === 8) await git(repo(), 'gc', '-q');
      }
      repoFiles = tree(repo());
      repoLog = await git(repo(), 'log', '--stat', '--format=%H %s');

      // A zip of 24 files of 1 MiB: its listing is at the end of the archive.
      const zsrc = join(fs.scratch, 'zipsrc');
      mkdirSync(zsrc);
      for (let i = 0; i < 24; i++) writeFileSync(join(zsrc, `m${i}.bin`), pattern(MiB, 500 + i));
      await ok('python3', ['-m', 'zipfile', '-c', zip(), ...readdirSync(zsrc).sort().map((n) => join(zsrc, n))]);
      zipList = await ok('python3', ['-m', 'zipfile', '-l', zip()]);

      // A 24 MiB log of lines of varying length.
      const lines: string[] = [];
      for (let i = 0, n = 0; n < 24 * MiB; i++) {
        const l = `2026-12-07T16:${String(i % 60).padStart(2, '0')}:00Z host${i % 7} req=${i} ${'x'.repeat((i * 37) % 150)}\n`;
        lines.push(l);
        n += l.length;
      }
      logText = lines.join('');
      writeFileSync(log(), logText);

      d = startDaemon([policy], stateDir);
      await d.ready;
      const acts = await applyAll();
      assert.ok(acts.size >= 3 + repoFiles.size, `released ${acts.size} files`);
      for (const p of [fioRead(), fioWrite(), db(), join(repo(), '.git', 'index')]) {
        assert.equal(stateOf(p), 'released', p);
        assert.ok(statSync(p).blocks * 512 <= 4096, `${p}: punched`);
      }
    });
    after(async () => {
      try {
        if (d) assert.equal((await d.stop()).code, 0);
      } finally {
        fs?.unmount();
      }
    });

    test('fio random reads with verify: every block it reads checks, and only those chunks come back', async () => {
      await fio(fioRead(), '--rw=randread', '--number_ios=12', '--randseed=4242');
      assert.equal(stateOf(fioRead()), 'partial', 'a dozen 64 KiB reads must not recall a 32 MiB file whole');
      await fio(fioRead(), '--rw=read');
      // Read whole: every chunk resident; the record says so once the file is synced (after the last answer).
      await within('fio-read.dat archived after a whole read', 10_000, () => stateOf(fioRead()) === 'archived');
    });

    test('fio random writes into a released file: its own verify passes, untouched blocks keep their bytes, re-release takes the new content', async () => {
      await fio(fioWrite(), '--rw=randwrite', '--number_ios=24', '--randseed=99', '--do_verify=1', '--verify_pattern=0x7a7a7a7a');
      const now = readFileSync(fioWrite());
      assert.equal(now.length, fioWriteOrig.length);
      let changed = 0;
      for (let off = 0; off < now.length; off += FIO_BS) {
        if (!now.subarray(off, off + FIO_BS).equals(fioWriteOrig.subarray(off, off + FIO_BS))) changed++;
      }
      assert.ok(changed >= 1 && changed <= 24, `${changed} blocks differ from the original (fio wrote at most 24)`);
      // Every block, written now or before the release, has a valid header: no zeros anywhere.
      await fio(fioWrite(), '--rw=read');
      assert.notEqual(stateOf(fioWrite()), 'released');
      // The copy on the tier is stale now: a release must upload the new bytes first.
      const acts = await applyAll();
      assert.equal(acts.get('fio-write.dat')?.status, 'done');
      assert.ok((acts.get('fio-write.dat')?.uploaded ?? 0) > 0, 'the new content was uploaded');
      assert.equal(stateOf(fioWrite()), 'released');
      assert.equal(sha(readFileSync(fioWrite())), sha(now), 'recalled after the second release: the written content, not the first copy');
      await fio(fioWrite(), '--rw=read');
    });

    test('sqlite3: a point query reads a few pages, integrity_check and .dump are exact, a write lands and survives a re-release', async () => {
      const one = await ok('sqlite3', [db(), "SELECT id, length(b) FROM t WHERE k = (SELECT k FROM t WHERE id = 41234)"]);
      assert.match(one, /^41234\|300$/m);
      assert.equal(stateOf(db()), 'partial', 'an index lookup must not recall the database whole');
      const m0 = await getMetrics(stateDir);
      assert.equal((await ok('sqlite3', [db(), 'PRAGMA integrity_check'])).trim(), 'ok');
      const m1 = await getMetrics(stateDir);
      // integrity_check walks long runs of pages downward (runs of 100-450 4 KiB pages): with
      // a window below such a run, 26 reads waited on the S3 tier (16 KiB chunks), 1338 without.
      const waits = counter(m1, 'tier_recalls_total') - counter(m0, 'tier_recalls_total');
      assert.ok(waits <= 100, `${waits} reads of integrity_check waited on the tier`);
      assert.equal(sha(await ok('sqlite3', [db(), '.dump'])), dbDump);

      await ok('sqlite3', [db(), "BEGIN; UPDATE t SET b = zeroblob(300) WHERE id % 1000 = 0; INSERT INTO t(k, b) VALUES ('new', randomblob(50000)); COMMIT;"]);
      const written = sha(await ok('sqlite3', [db(), '.dump']));
      assert.notEqual(written, dbDump);
      await applyAll();
      assert.equal(stateOf(db()), 'released');
      assert.equal((await ok('sqlite3', [db(), 'PRAGMA integrity_check'])).trim(), 'ok');
      assert.equal(sha(await ok('sqlite3', [db(), '.dump'])), written, 'after the second release: the database as written');
      assert.equal((await ok('sqlite3', [db(), "SELECT count(*) FROM t WHERE k = 'new' OR b = zeroblob(300)"])).trim(), '61');
    });

    test("python's zipfile: the listing reads the archive's end only; a CRC test of every member passes", async () => {
      assert.equal(await ok('python3', ['-m', 'zipfile', '-l', zip()]), zipList);
      assert.equal(stateOf(zip()), 'partial', 'a listing must not recall a 24 MiB archive whole');
      await ok('python3', ['-m', 'zipfile', '-t', zip()]);
    });

    test('tail -n and tac read a released log backward: exact output, a few waits on the tier, not one per chunk', async () => {
      const lines = logText.split('\n').slice(0, -1);
      const m0 = await getMetrics(stateDir);
      const tail = await ok('tail', ['-n', '20000', log()]);
      assert.equal(tail, lines.slice(-20000).join('\n') + '\n');
      const m1 = await getMetrics(stateDir);
      assert.equal(stateOf(log()), 'partial', 'tail must not recall the log whole');
      const read = Buffer.byteLength(tail);
      const fetched = counter(m1, 'tier_recall_bytes_total') - counter(m0, 'tier_recall_bytes_total');
      const waits = counter(m1, 'tier_recalls_total') - counter(m0, 'tier_recalls_total');
      // tail reads 8 KiB blocks from the end down: without a window below it, each chunk
      // was a wait of its own (S3 tier, 16 KiB chunks: 140 waits; 5 with it).
      assert.ok(fetched <= 2 * read + 256 * 1024, `fetched ${fetched} for ${read} read`);
      assert.ok(waits <= 24, `${waits} reads waited on the tier for ${read} bytes`);

      const tac = await ok('tac', [log()]);
      assert.equal(sha(tac), sha(lines.reverse().join('\n') + '\n'));
      const m2 = await getMetrics(stateDir);
      const tacWaits = counter(m2, 'tier_recalls_total') - counter(m1, 'tier_recalls_total');
      // (Local tier, 1 MiB chunks: 21 waits without the window below, 0 with it.)
      assert.ok(tacWaits <= 8, `${tacWaits} reads waited on the tier for a 24 MiB tac`);
      await within('app.log archived after tac', 10_000, () => stateOf(log()) === 'archived');
    });

    test('git: fsck --full, log and status on a released repository; a commit into it; a clone of it', async () => {
      await git(repo(), 'fsck', '--full', '--strict', '--no-progress');
      assert.equal(await git(repo(), 'log', '--stat', '--format=%H %s'), repoLog);
      const now = tree(repo());
      for (const [p, b] of repoFiles) assert.ok(now.get(p)?.equals(b), `${p}: differs from before the release`);
      // status compares the work tree with the index (and rewrites the index: the release
      // changed every file's ctime, so git refreshes its stat data).
      assert.equal(await git(repo(), 'status', '--porcelain'), '');

      writeFileSync(join(repo(), 'd1', 'f1.bin'), pattern(33_333, 7));
      await git(repo(), 'commit', '-q', '-a', '-m', 'after release');
      await git(repo(), 'fsck', '--full', '--strict', '--no-progress');
      const head = (await git(repo(), 'rev-parse', 'HEAD')).trim();

      const clone = join(out, 'clone');
      await ok('git', ['clone', '-q', '--no-hardlinks', repo(), clone], GIT_ENV);
      await git(clone, 'fsck', '--full', '--strict', '--no-progress');
      assert.equal((await git(clone, 'rev-parse', 'HEAD')).trim(), head);
      assert.ok(readFileSync(join(clone, 'd1', 'f1.bin')).equals(pattern(33_333, 7)));
      assert.ok(readFileSync(join(clone, 'd2', 'f5.bin')).equals(repoFiles.get(join('d2', 'f5.bin'))!));
    });

    test('rsync -a of a released tree: every file byte-exact, times kept', async () => {
      // The tests above recalled much of the repository: read it (the content to expect),
      // then release it again so that rsync meets released files.
      const src = tree(repo());
      await applyAll();
      const released = [...src.keys()].filter((p) => stateOf(join(repo(), p)) === 'released');
      assert.ok(released.length >= src.size - 2, `${released.length} of ${src.size} released`);
      const dst = join(out, 'rsync');
      await ok('rsync', ['-a', `${repo()}/`, `${dst}/`]);
      const copy = tree(dst);
      assert.equal(copy.size, src.size);
      for (const [p, b] of src) {
        assert.ok(copy.get(p)?.equals(b), `${p}: rsync's copy differs (zeros where data was?)`);
        assert.equal(statSync(join(dst, p)).mtimeMs, statSync(join(repo(), p)).mtimeMs, `${p}: mtime`);
      }
      await git(dst, 'fsck', '--full', '--strict', '--no-progress');
    });
  });
}
