// Hostile users (issue 18): an unprivileged user (nobody) races directory <-> symlink swaps
// against every path-based operation of the root daemon and CLI, and the tests check that
// nothing outside the user's reach changed: bytes, xattrs (trusted.* included), mtimes,
// blocks, and that the tier holds no object with an outside file's bytes.
//
// The swap: nobody owns data/u; in data/u/rN, `d` is a directory of their files and `d.l`
// a symlink to a directory of root's files with the same names. A child running as nobody
// exchanges them (renameat2 RENAME_EXCHANGE) as fast as it can. Before the fix (issue 18) the daemon
// resolved the path again at every step, so data/u/rN/d/f7 became outside/rN/f7.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { pattern, REPO } from '../daemon/harness.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { ensureDist, recordOf, sha256, startDistDaemon, type Daemon } from './dist-daemon.js';

const NOBODY = 65534;
const NOGROUP = 65534;
const FILES = 24;

/** Everything root owns that nobody must not reach through us: per file, what could change. */
function snapshot(dirs: string[], hash: boolean): Map<string, string> {
  const out = new Map<string, string>();
  for (const dir of dirs) {
    // getfattr as root lists trusted.* too; -P: no symlink followed.
    const x = spawnSync('getfattr', ['-R', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', dir], { encoding: 'utf8' });
    const attrs = new Map<string, string>();
    for (const block of x.stdout.split('\n\n')) {
      const m = /^# file: (.*)\n([\s\S]*)$/.exec(block.trim());
      if (m) attrs.set(m[1]!, m[2]!);
    }
    for (const name of readdirSync(dir, { recursive: true }) as string[]) {
      const p = join(dir, name);
      const st = lstatSync(p, { bigint: true });
      if (!st.isFile()) continue;
      const bytes = hash ? sha256(readFileSync(p)) : '-';
      out.set(p, `${bytes} size=${st.size} blocks=${st.blocks} mtime=${st.mtimeNs} xattr=${attrs.get(p) ?? ''}`);
    }
  }
  return out;
}

function diff(a: Map<string, string>, b: Map<string, string>): string[] {
  const changed: string[] = [];
  for (const [p, v] of a) if (b.get(p) !== v) changed.push(`${p}: ${v} -> ${b.get(p)}`);
  return changed;
}

/** sha256 of every object in a local tier (chunk sums objects included: they never match a file). */
function tierHashes(tierDir: string): Set<string> {
  const out = new Set<string>();
  for (const name of readdirSync(tierDir, { recursive: true }) as string[]) {
    const p = join(tierDir, name);
    if (lstatSync(p).isFile()) out.add(sha256(readFileSync(p)));
  }
  return out;
}

/** A child, running as nobody, swapping `d` (a directory) and `d.l` (a symlink) until killed. */
function startSwapper(dirs: string[]): Promise<ChildProcess> {
  // renameat2(RENAME_EXCHANGE): `d` is always either the directory or the symlink, never absent.
  const child = spawn(
    '/usr/bin/python3',
    [
      '-c',
      `import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
ds = [d.encode() for d in sys.argv[1:]]
first = True
while True:
    for d in ds:
        if libc.renameat2(-100, d, -100, d + b'.l', 2) != 0:
            sys.exit('renameat2: errno %d' % ctypes.get_errno())
    if first:
        first = False
        print('go', flush=True)`,
      ...dirs,
    ],
    { uid: NOBODY, gid: NOGROUP, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((res, rej) => {
    child.stdout!.once('data', () => res(child));
    child.once('exit', (c) => rej(new Error(`swapper exited ${c}`)));
  });
}

async function stopSwapper(child: ChildProcess): Promise<void> {
  child.kill('SIGKILL');
  if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
}

/** The directory back in place (killed mid-loop, the swapper may have left the symlink at `d`). */
function settle(d: string): void {
  if (lstatSync(d).isSymbolicLink()) assert.equal(spawnSync('/usr/bin/python3', ['-c', `import ctypes, sys; sys.exit(ctypes.CDLL(None).renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2))`, d, `${d}.l`]).status, 0);
  assert.ok(lstatSync(d).isDirectory() && lstatSync(`${d}.l`).isSymbolicLink(), `${d} settled`);
}

describe('hostile users: swaps race every path-based operation', () => {
  let fs: LoopFs;
  let other: LoopFs;
  let daemon: Daemon;
  let stateDir: string;
  let tierDir: string;
  let data: string;
  let policy: string;
  /** Root's files nobody must not reach: same filesystem outside the fileset, another filesystem, a 0700 dir inside the fileset. */
  let outside: string;
  let elsewhere: string;
  let priv: string;
  let before0: Map<string, string>;
  let privBefore: Map<string, string>;
  let outsideShas: Set<string>;
  let round = 0;

  const client = async () => (await connectDaemon(stateDir))!;

  /** A fresh data/u/rN/d of nobody's files, and d.l -> a directory of root's files with the same names. */
  function victimDir(target: string): string {
    const r = join(data, 'u', `r${round++}`);
    const d = join(r, 'd');
    mkdirSync(d, { recursive: true });
    for (let i = 0; i < FILES; i++) {
      const p = join(d, `f${i}.bin`);
      writeFileSync(p, pattern(8192 + i * 512, 5000 + round * 100 + i));
      chownSync(p, NOBODY, NOGROUP);
    }
    chownSync(d, NOBODY, NOGROUP);
    chownSync(r, NOBODY, NOGROUP);
    symlinkSync(target, `${d}.l`);
    return d;
  }

  /** Root's files f0..fN in dir (read-only for others), recorded for the snapshot. */
  function rootFiles(dir: string, seed: number): void {
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < FILES; i++) writeFileSync(join(dir, `f${i}.bin`), pattern(8192 + i * 512, seed + i), { mode: 0o600 });
  }

  before(async () => {
    ensureDist();
    fs = mountLoopFs('ext4');
    other = mountLoopFs('ext4', 32);
    for (const m of [fs, other]) {
      chmodSync(dirname(m.dir), 0o755);
      chmodSync(m.dir, 0o755);
    }
    stateDir = join(fs.scratch, 'state');
    tierDir = join(fs.scratch, 'tier');
    data = join(fs.dir, 'data');
    mkdirSync(join(data, 'u'), { recursive: true, mode: 0o755 });
    chownSync(join(data, 'u'), NOBODY, NOGROUP);
    mkdirSync(tierDir);
    outside = join(fs.dir, 'outside');
    elsewhere = join(other.dir, 'elsewhere');
    priv = join(data, 'private');
    rootFiles(outside, 100);
    rootFiles(elsewhere, 200);
    rootFiles(priv, 300);
    chmodSync(priv, 0o700);
    policy = join(fs.scratch, 'p.hsmpolicy');
    writeFileSync(
      policy,
      `tier slow { local "${tierDir}" chunk 1MiB readahead 1MiB }\nfileset data { root "${data}" }\n` +
        `policy p on data {\n  rule all: size >= 0B -> release to slow\n}\n`,
    );
    daemon = startDistDaemon(policy, stateDir);
    await daemon.ready;
    // Root's private files are released in place: a recall, pin or unpin through a swapped
    // path would change their record or blocks.
    await (await client()).apply({ policyFile: policy, dryRun: false });
    for (let i = 0; i < FILES; i++) assert.equal(recordOf(join(priv, `f${i}.bin`))?.state, 'released');
    before0 = snapshot([outside, elsewhere], true);
    privBefore = snapshot([priv], false);
    outsideShas = new Set([...before0.values()].map((v) => v.split(' ')[0]!));
  });

  after(async () => {
    await daemon?.stop();
    other?.unmount();
    fs?.unmount();
  });

  /** Nothing of root's changed, and no object in the tier holds an outside file's bytes. */
  function assertUntouched(what: string): void {
    const changed = [...diff(before0, snapshot([outside, elsewhere], true)), ...diff(privBefore, snapshot([priv], false))];
    const leaked = [...tierHashes(tierDir)].filter((h) => outsideShas.has(h));
    console.log(`${what}: ${changed.length} root files changed, ${leaked.length} tier objects hold root's bytes`);
    assert.deepEqual(changed, [], `${what}: root's files changed`);
    assert.equal(leaked.length, 0, `${what}: the tier holds copies of root's files`);
  }

  test('tier apply (release) while nobody swaps directories for symlinks', async () => {
    let seen = 0;
    const outcomes = new Map<string, number>();
    for (const target of [outside, elsewhere, priv, outside]) {
      const d = victimDir(target);
      const swapper = await startSwapper([d]);
      try {
        for (let i = 0; i < 3; i++) {
          await (await client()).apply({ policyFile: policy, dryRun: false }, (e) => {
            const ev = e as { type?: string; path?: string; status?: string; message?: string };
            if (ev.type === 'action' && ev.path?.includes('/d/') && ev.status !== 'planned') {
              seen++;
              const k = `${ev.status} ${(ev.message ?? '').replace(/^.*\.bin: /, '')}`;
              outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
            }
          });
        }
      } finally {
        await stopSwapper(swapper);
      }
      settle(d);
    }
    console.log('apply outcomes', JSON.stringify([...outcomes]));
    assert.ok(seen > 0, 'the applies met the swapped files');
    assertUntouched('apply');
  });

  test('archive, release, recall by path (daemon) while nobody swaps', async () => {
    const ds = [victimDir(outside), victimDir(priv), victimDir(elsewhere)];
    const paths = ds.flatMap((d) => Array.from({ length: FILES }, (_, i) => join(d, `f${i}.bin`)));
    const swapper = await startSwapper(ds);
    const refused: string[] = [];
    try {
      for (const op of ['archive', 'release', 'recall', 'release', 'recall'] as const) {
        await (await client()).manual(op, { paths }, (e) => {
          const ev = e as { status?: string; message?: string };
          if (ev.status === 'failed' && ev.message) refused.push(ev.message);
        });
      }
    } finally {
      await stopSwapper(swapper);
    }
    for (const d of ds) settle(d);
    console.log('refusals, e.g.', refused.slice(0, 3));
    assertUntouched('manual ops');
  });

  test('tier CLI (archive, pin, unpin in-process; status; explain) by path while nobody swaps', async () => {
    const ds = [victimDir(priv), victimDir(outside)];
    const paths = ds.flatMap((d) => Array.from({ length: FILES }, (_, i) => join(d, `f${i}.bin`)));
    const swapper = await startSwapper(ds);
    try {
      // In-process runs: stop the daemon's socket from taking them by pointing at a state dir with none.
      const noDaemon = join(fs.scratch, 'state-cli');
      for (const args of [
        ['pin', ...paths, '--state-dir', noDaemon],
        ['unpin', ...paths, '--state-dir', noDaemon],
        ['archive', '--config', policy, ...paths, '--state-dir', noDaemon],
        ['status', ...paths],
        ['explain', policy, ...paths.slice(0, 4)],
      ]) {
        spawnSync(process.execPath, [join(REPO, 'bin/tier.js'), ...args], { encoding: 'utf8' });
      }
    } finally {
      await stopSwapper(swapper);
    }
    for (const d of ds) settle(d);
    assertUntouched('cli');
  });
});
