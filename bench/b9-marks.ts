// 9. Marks at scale (issue 14, items 3 and 4): N released files that nobody reads, the real
// daemon started on them twice, with one inode mark per released file (TIER_MARKS=inode, the
// old default and still the fallback) and with the filesystem mark (recall/marks.ts).
// Figures: kernel slab bytes per released file once caches are dropped (goal <= 100 B), time
// from `tier daemon` to `ready`, the daemon's RSS (supervisor + worker); and what the
// filesystem mark costs every other file there: `cat` of M never-released small files and
// `dd` of a never-released large file (one untimed read, then the median of three), each
// after a cache drop, vs no daemon at all.
// The released files are made as the engine leaves them (size kept, no block, a released
// record, a catalog row), without uploading: nothing here reads them.
// Sizes: the 100,000 released files at the default scale (0.5) and above (shapeFor),
// so `bash bench/run.sh --only 9` gives the figures (9a slab per file, 9b ready time,
// 9c RSS); bench/b9-memory.ts splits the RSS at 0, 20,000 and 100,000 released files.
//   node --import tsx bench/b9-marks.ts [--scale 0.5]     (also: bench/main.ts --only 9)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, ftruncateSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { openCatalog, rowFromRecord } from '../src/engine/catalog.js';
import { encodeRecord, XATTR_STATE, type StateRecord } from '../src/record/state-record.js';
import { fsetxattr, futimens, nsToTimespec } from '../src/kernel/libc.js';
import { REPO } from './lib/setup.js';
import { fmtBytes, fmtMs, fmtRate, loadavg, log, median, MiB, nowMs, sh, timeAsync, unmountAndRemove, type Result } from './lib/util.js';

const MTIME_NS = 1_700_000_000_000_000_000n;

interface Shape {
  released: number;
  plain: number;
  bigMiB: number;
}

/**
 * The 100,000 released files from scale 0.5 (the default) up: about two minutes on an
 * idle 2-core machine (the inode-mark daemon's start-up marking is most of it); fewer below
 * 0.5; BENCH9_RELEASED=N sets it alone.
 */
export const shapeFor = (scale: number): Shape => ({
  released: Number(process.env.BENCH9_RELEASED) || Math.max(2000, Math.round(100_000 * Math.min(1, 2 * scale))),
  plain: Math.max(100, Math.round(400 * scale)),
  bigMiB: Math.max(32, Math.round(256 * scale)),
});

function dropCaches(): void {
  sh('sync', []);
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/** Slab bytes: /proc/meminfo Slab, and the caches a marked inode lives in (slabinfo: active objs x size). */
function slab(): { total: number; inodes: number } {
  const kb = Number(/^Slab:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  let inodes = 0;
  for (const l of readFileSync('/proc/slabinfo', 'utf8').split('\n')) {
    const f = l.split(/\s+/);
    if (/^(ext4_inode_cache|fanotify_mark|fsnotify_mark_connector|xfs_inode)$/.test(f[0] ?? '')) inodes += Number(f[1]) * Number(f[3]);
  }
  return { total: kb * 1024, inodes };
}

export function makeReleased(dir: string, n: number, stateDir: string): void {
  const cat = openCatalog(join(stateDir, 'catalog.db'));
  const rows = function* () {
    for (let i = 0; i < n; i++) {
      const sub = join(dir, `d${Math.floor(i / 1000)}`);
      if (i % 1000 === 0) mkdirSync(sub);
      const path = join(sub, `f${i}`);
      const fd = openSync(path, 'wx');
      try {
        ftruncateSync(fd, 65536);
        const rec: StateRecord = { v: 1, state: 'released', pinned: false, gen: 1, copy: { tier: 'slow', key: `b9/${i}`, size: 65536, mtimeNs: MTIME_NS.toString(), sha256: '0'.repeat(64), archivedAt: Date.now(), chunk: 65536 } };
        fsetxattr(fd, XATTR_STATE, encodeRecord(rec), path);
        futimens(fd, nsToTimespec(MTIME_NS), nsToTimespec(MTIME_NS), path);
        const st = fstatSync(fd);
        yield rowFromRecord({ dev: st.dev, ino: st.ino, absPath: path, size: 65536 }, rec, 'released', Date.now())!;
      } finally {
        closeSync(fd);
      }
    }
  };
  cat.rebuild(-1, rows());
  cat.close();
}

function makePlain(dir: string, n: number, bigPath: string, bigMiB: number): void {
  const small = randomBytes(16384);
  for (let i = 0; i < n; i++) writeFileSync(join(dir, `p${i}`), small);
  const fd = openSync(bigPath, 'w');
  const chunk = randomBytes(MiB);
  for (let i = 0; i < bigMiB; i++) writeSync(fd, chunk);
  closeSync(fd);
}

interface Daemon {
  /** The worker's own figure for start-up marking (log line "start-up marks placed"). */
  marksMs(): number;
  /** The start-up reconcile pass (it checks every released file, on the handler's event loop) is over. */
  reconcileDone: Promise<void>;
  proc: ChildProcess;
  ready: Promise<void>;
  exited: Promise<void>;
}

export function startDaemon(policy: string, stateDir: string, env: NodeJS.ProcessEnv, extra: string[] = []): Daemon {
  // The built CLI, as an admin runs it (tsx compiling at start-up would dominate); else the sources.
  const cmd = existsSync(join(REPO, 'dist/cli/main.js')) ? ['bin/tier.js'] : ['--import', 'tsx', 'src/cli/main.ts'];
  const proc = spawn(process.execPath, [...cmd, 'daemon', policy, '--state-dir', stateDir, ...extra], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let marksMs = NaN;
  let reconciled!: () => void;
  const reconcileDone = new Promise<void>((res) => (reconciled = res));
  proc.stderr!.on('data', (c) => {
    err = (err + c).slice(-4000);
    const m = /"msg":"start-up marks placed".*?"ms":(\d+)/.exec(String(c));
    if (m) marksMs = Number(m[1]);
    if (/"msg":"reconcile pass done"/.test(String(c))) reconciled();
    if (process.env.B9_DAEMON_LOG) appendFileSync(process.env.B9_DAEMON_LOG, c);
  });
  const exited = new Promise<void>((res) => proc.on('exit', () => res()));
  const ready = new Promise<void>((res, rej) => {
    let out = '';
    proc.stdout!.on('data', (c) => {
      out += c;
      if (/^ready$/m.test(out)) res();
    });
    proc.on('exit', (code) => rej(new Error(`daemon exited ${code} before ready:\n${err}`)));
    setTimeout(() => rej(new Error(`no ready within 10 min:\n${err}`)), 600_000).unref();
  });
  ready.catch(() => {});
  return { proc, ready, exited, marksMs: () => marksMs, reconcileDone };
}

/** VmRSS of the daemon and its children (the worker), bytes. */
export function rss(pid: number): number {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  let sum = 0;
  for (const p of [pid, ...kids]) sum += Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  return sum;
}

interface Figures {
  readyMs: number;
  marksMs: number;
  slabPerFile: number;
  inodeSlabPerFile: number;
  rss: number;
  catMs: number;
  ddMs: number;
}

/**
 * Cold reads: the page cache is dropped before each. The big file's `dd` is read once
 * untimed, then timed three times (median): the first read after a while comes from the
 * host's disk rather than its cache, whatever the mark (2026-12-07: the first `dd` of a
 * daemon life took 192-328 ms with and without the filesystem mark, the next three 83-257
 * ms), and between the no-daemon reads and the filesystem mark's lies the inode-mark life,
 * whose I/O over 100k files left the host's cache colder for the second.
 */
async function coldReads(plainDir: string, big: string): Promise<{ catMs: number; ddMs: number }> {
  dropCaches();
  const catMs = await timeAsync('bash', ['-c', `find '${plainDir}' -type f -print0 | xargs -0 cat > /dev/null`]);
  const dd = () => timeAsync('dd', [`if=${big}`, 'of=/dev/null', 'bs=1M', 'status=none']);
  dropCaches();
  await dd();
  const times: number[] = [];
  for (let k = 0; k < 3; k++) {
    dropCaches();
    times.push(await dd());
  }
  return { catMs, ddMs: median(times) };
}

/**
 * One daemon life: start, `ready`, (filesystem mark: the cold reads of never-released files),
 * caches dropped, slab and RSS, stop, caches dropped, slab again. Per released file: the slab
 * the running daemon holds over the stopped one, measured seconds apart (other sessions on
 * the machine move slab too: a long gap would add their noise).
 */
async function withDaemon(scheme: 'inode' | 'filesystem', policy: string, stateDir: string, n: number, reads: (() => Promise<{ catMs: number; ddMs: number }>) | null): Promise<Figures> {
  dropCaches();
  const env = { ...process.env, TIER_MARKS: scheme === 'inode' ? 'inode' : '' };
  const t0 = nowMs();
  const d = startDaemon(policy, stateDir, env);
  let after: ReturnType<typeof slab>;
  let r: number;
  let readyMs: number;
  let cold = { catMs: NaN, ddMs: NaN };
  try {
    await d.ready;
    readyMs = nowMs() - t0;
    if (reads) {
      // Steady state: the start-up reconcile pass shares the event loop that answers events.
      await Promise.race([d.reconcileDone, new Promise((res) => setTimeout(res, 300_000))]);
      cold = await reads();
    }
    await new Promise((res) => setTimeout(res, 500));
    dropCaches();
    after = slab();
    r = rss(d.proc.pid!);
  } finally {
    d.proc.kill('SIGTERM');
    await d.exited;
  }
  dropCaches();
  const stopped = slab();
  return { readyMs, marksMs: d.marksMs(), slabPerFile: (after.total - stopped.total) / n, inodeSlabPerFile: (after.inodes - stopped.inodes) / n, rss: r, ...cold };
}

export async function benchMarks(scale: number): Promise<Result[]> {
  const shape = shapeFor(scale);
  const base = mkdtempSync('/var/tmp/tier-bench9-');
  const img = join(base, 'fs.img');
  const mnt = join(base, 'mnt');
  mkdirSync(mnt);
  const imageMiB = 256 + shape.bigMiB + Math.ceil((shape.plain * 20) / 1024) + Math.ceil(shape.released / 1000);
  sh('truncate', ['-s', `${imageMiB}M`, img]);
  sh('mkfs.ext4', ['-q', '-F', '-I', '512', '-N', String(shape.released + shape.plain + 10_000), img]);
  sh('mount', ['-o', 'loop', img, mnt]);
  try {
    const data = join(mnt, 'data');
    const rel = join(data, 'rel');
    const plainDir = join(data, 'plain');
    const big = join(data, 'big.bin');
    const stateDir = join(base, 'state'); // beside the mount, as an admin would (the catalog is not managed data)
    const tierDir = join(base, 'tier');
    for (const d of [rel, plainDir, stateDir, tierDir]) mkdirSync(d, { recursive: true });
    const policy = join(base, 'b9.hsmpolicy');
    writeFileSync(policy, `tier slow { local "${tierDir}" }\nfileset data { root "${data}" }\npolicy p on data {\n  rule none: name ~ "__never__" -> keep\n}\n`);
    log(`9: ${shape.released} released files, ${shape.plain} x 16 KiB plain files, a ${shape.bigMiB} MiB plain file (load ${loadavg()})`);
    let t = nowMs();
    makeReleased(rel, shape.released, stateDir);
    makePlain(plainDir, shape.plain, big, shape.bigMiB);
    log(`9: made in ${fmtMs(nowMs() - t)}`);

    const runs: { none: { catMs: number; ddMs: number }; inode: Figures; fs: Figures }[] = [];
    for (let run = 0; run < 2; run++) {
      t = nowMs();
      const none = await coldReads(plainDir, big);
      const inode = await withDaemon('inode', policy, stateDir, shape.released, null);
      const fs = await withDaemon('filesystem', policy, stateDir, shape.released, () => coldReads(plainDir, big));
      runs.push({ none, inode, fs });
      log(`9: run ${run + 1}: ready ${fmtMs(inode.readyMs)} (inode marks, marking ${fmtMs(inode.marksMs)}) vs ${fmtMs(fs.readyMs)} (filesystem mark, marking ${fmtMs(fs.marksMs)}); slab/file ${inode.slabPerFile.toFixed(0)} B vs ${fs.slabPerFile.toFixed(0)} B ` +
        `(inode caches ${inode.inodeSlabPerFile.toFixed(0)} vs ${fs.inodeSlabPerFile.toFixed(0)}); RSS ${fmtBytes(inode.rss)} vs ${fmtBytes(fs.rss)}; ` +
        `cold cat ${fmtMs(none.catMs)} (no daemon) / ${fmtMs(fs.catMs)} (fs mark), dd ${fmtRate(shape.bigMiB * MiB, none.ddMs)} / ${fmtRate(shape.bigMiB * MiB, fs.ddMs)} [${fmtMs(nowMs() - t)}, load ${loadavg()}]`);
    }
    // The daemon's RSS with no released file at all: "flat" is 100k vs this.
    const emptyState = join(base, 'state-empty');
    mkdirSync(emptyState);
    const empty = await withDaemon('filesystem', policy, emptyState, 1, null);
    log(`9: RSS with an empty catalog ${fmtBytes(empty.rss)} (load ${loadavg()})`);
    const last = runs[runs.length - 1]!;
    const best = (f: (r: (typeof runs)[number]) => number) => Math.min(...runs.map(f));
    const n = shape.released;
    const out: Result[] = [
      { id: '9a', name: `kernel slab per released file, filesystem mark (${n} files, caches dropped)`, figure: `${last.fs.slabPerFile.toFixed(0)} B (inode caches ${last.fs.inodeSlabPerFile.toFixed(0)} B)`, baseline: `${last.inode.slabPerFile.toFixed(0)} B with inode marks (inode caches ${last.inode.inodeSlabPerFile.toFixed(0)} B)`, ratio: Math.max(0, last.fs.inodeSlabPerFile) / 100, limit: 1, dir: '<=', ratioIs: 'inode-cache slab bytes per released file / 100 B' },
      { id: '9b', name: `time to ready with ${n} released files, filesystem mark`, figure: `${fmtMs(best((r) => r.fs.readyMs))} (marking ${fmtMs(best((r) => r.fs.marksMs))})`, baseline: `${fmtMs(best((r) => r.inode.readyMs))} with inode marks (marking ${fmtMs(best((r) => r.inode.marksMs))})`, ratio: best((r) => r.fs.readyMs) / best((r) => r.inode.readyMs), limit: 1, dir: '<=', ratioIs: 'filesystem mark / inode marks' },
      { id: '9c', name: `daemon RSS with ${n} released files, filesystem mark`, figure: fmtBytes(last.fs.rss), baseline: `${fmtBytes(empty.rss)} with none (inode marks: ${fmtBytes(last.inode.rss)})`, ratio: last.fs.rss / empty.rss, limit: 1.2, dir: '<=', ratioIs: `RSS with ${n} released files / with none` },
      { id: '9d', name: `cold cat of ${shape.plain} never-released 16 KiB files, filesystem mark`, figure: fmtMs(best((r) => r.fs.catMs)), baseline: `${fmtMs(best((r) => r.none.catMs))} without a daemon`, ratio: best((r) => r.fs.catMs) / best((r) => r.none.catMs), limit: 2, dir: '<=', ratioIs: 'filesystem mark / no daemon' },
      { id: '9e', name: `cold dd of a never-released ${shape.bigMiB} MiB file, filesystem mark`, figure: fmtRate(shape.bigMiB * MiB, best((r) => r.fs.ddMs)), baseline: `${fmtRate(shape.bigMiB * MiB, best((r) => r.none.ddMs))} without a daemon`, ratio: best((r) => r.none.ddMs) / best((r) => r.fs.ddMs), limit: 0.9, dir: '>=', ratioIs: 'throughput, filesystem mark / no daemon (readahead kept)' },
    ];
    return out;
  } finally {
    unmountAndRemove(mnt, base);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--scale');
  const scale = i > 0 ? Number(process.argv[i + 1]) : Number(process.env.BENCH_SCALE ?? 0.5);
  for (const r of await benchMarks(scale)) console.log(`${r.id} ${r.name}: ${r.figure} | baseline ${r.baseline} | ratio ${r.ratio.toFixed(2)} (${r.dir} ${r.limit}: ${r.ratioIs})`);
}
