// Runs the real CLI's `tier daemon` as a child process for the daemon tests, and builds
// released files by hand (tier object + punch + xattr record + catalog row) so the
// daemon's start-up marking has something to mark without going through the engine.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, constants, mkdirSync, fstatSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeRecord, XATTR_STATE, type StateRecord } from '../../src/record/state-record.js';
import { openCatalog } from '../../src/engine/catalog.js';
import { socketPath } from '../../src/daemon/protocol.js';
import { fsetxattr, futimens, nsToTimespec } from '../../src/kernel/libc.js';
import { punchHole } from '../../src/kernel/punch.js';
import { LocalTier } from '../../src/tiers/local.js';

export const REPO = new URL('../..', import.meta.url).pathname;

export interface DaemonProc {
  proc: ChildProcess;
  stdout: string[];
  /** Parsed JSON log lines from stderr (non-JSON lines kept as {raw}). */
  logs: Record<string, unknown>[];
  stderrText(): string;
  ready: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first log line matching pred (waits for it). */
  waitLog(pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface CliOptions {
  /** Extra node flags (e.g. `--import` of a fault-injection module); the worker inherits them. */
  nodeArgs?: string[];
  env?: Record<string, string>;
}

export function cli(args: string[], o: CliOptions = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', ...(o.nodeArgs ?? []), 'src/cli/main.ts', ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...o.env },
  });
}

export function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = cli(args);
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (c) => (stdout += c));
  p.stderr!.on('data', (c) => (stderr += c));
  // 'close', not 'exit': the pipes may still hold output when the process exits.
  return new Promise((resolve) => p.on('close', (code) => resolve({ code, stdout, stderr })));
}

export function startDaemon(policyFiles: string[], stateDir: string, extra: string[] = [], o: CliOptions = {}): DaemonProc {
  const proc = cli(['daemon', ...policyFiles, '--state-dir', stateDir, ...extra], o);
  const stdout: string[] = [];
  const logs: Record<string, unknown>[] = [];
  let errText = '';
  let outBuf = '';
  let errBuf = '';
  let onReady!: () => void;
  let onFail!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    onReady = res;
    onFail = rej;
  });
  ready.catch(() => {}); // tests that expect a refusal never await it
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
    outBuf += c;
    const lines = outBuf.split('\n');
    outBuf = lines.pop()!;
    for (const l of lines) {
      stdout.push(l);
      if (l === 'ready') onReady();
    }
  });
  const copy = process.env.TIER_TEST_DAEMON_LOG; // debugging: keep the daemon's stderr
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => {
    if (copy) appendFileSync(copy, c);
    errText += c;
    errBuf += c;
    const lines = errBuf.split('\n');
    errBuf = lines.pop()!;
    for (const l of lines) {
      try {
        logs.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        logs.push({ raw: l });
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    proc.on('exit', (code, signal) => {
      onFail(new Error(`daemon exited (${code ?? signal}) before ready:\n${errText}`));
      res({ code, signal });
    }),
  );
  return {
    proc,
    stdout,
    logs,
    stderrText: () => errText,
    ready,
    exited,
    async waitLog(pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
      for (;;) {
        const hit = logs.find(pred);
        if (hit) return hit;
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`daemon exited:\n${errText}`);
        await sleep(20);
      }
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** The usual daemon test layout on a loop fs: data dir on it, state and tier dirs beside it, a release-all policy. */
export function daemonLayout(fs: { dir: string; scratch: string }): { stateDir: string; tierDir: string; data: string; policy: string } {
  const stateDir = join(fs.scratch, 'state');
  const tierDir = join(fs.scratch, 'tier');
  const data = join(fs.dir, 'data');
  mkdirSync(data);
  mkdirSync(tierDir);
  return { stateDir, tierDir, data, policy: writePolicy(fs.scratch, data, tierDir) };
}

/** A policy whose only tier is a local directory; `rule` decides what apply does. */
export function writePolicy(
  dir: string,
  root: string,
  tierDir: string,
  rule = 'size >= 0B -> release to slow',
  tuning = '',
  name = 'test.hsmpolicy',
): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    `tier slow { local "${tierDir}" chunk 1MiB readahead 1MiB ${tuning} }\n` +
      `fileset data { root "${root}" }\n` +
      `policy p on data {\n  rule all: ${rule}\n}\n`,
  );
  return file;
}

/**
 * Releases `path` without the engine: object on the tier, whole-file punch, record, catalog
 * row (under `catalogPath` when given: a root path for a file reached through its backing).
 */
export async function releaseByHand(path: string, tierName: string, tierDir: string, stateDir: string, chunk = 1 << 20, catalogPath = path): Promise<void> {
  const data = readFileSync(path);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const fd = openSync(path, constants.O_RDWR | constants.O_NOATIME);
  try {
    const st = fstatSync(fd, { bigint: true });
    const key = `test/${st.ino}-${sha256.slice(0, 16)}`;
    const tier = new LocalTier(tierName, tierDir);
    await tier.put(key, Readable.from([data]), data.length, {
      sha256,
      size: data.length,
      path,
      mode: Number(st.mode),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeMs: Number(st.mtimeMs),
    });
    punchHole(fd, 0, data.length, path);
    const rec: StateRecord = {
      v: 1,
      state: 'released',
      pinned: false,
      copy: { tier: tierName, key, size: data.length, mtimeNs: String(st.mtimeNs), sha256, archivedAt: Date.now(), chunk },
      gen: 1,
    };
    fsetxattr(fd, XATTR_STATE, encodeRecord(rec), path);
    futimens(fd, nsToTimespec(st.atimeNs), nsToTimespec(st.mtimeNs), path);
    const cat = openCatalog(join(stateDir, 'catalog.db'));
    try {
      cat.upsert({
        dev: Number(st.dev),
        ino: Number(st.ino),
        path: catalogPath,
        state: 'released',
        pinned: false,
        tier: tierName,
        key,
        size: data.length,
        sha256,
        archivedAt: rec.copy!.archivedAt,
        updatedAt: Date.now(),
      });
    } finally {
      cat.close();
    }
  } finally {
    closeSync(fd);
  }
}

/** Deterministic, non-zero content (so a read of zeros can never pass for data). */
export function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size + 4);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE((x | 0x01010101) >>> 0, i);
  }
  return b.subarray(0, size);
}

/** One action event of `tier apply --json`. */
export interface ApplyAction {
  path: string;
  status: string;
  uploaded: number;
  message?: string;
}

/** `tier apply --json` (exit 0, or 1 when some file failed): the action event per relative path. */
export async function applyActions(policy: string, stateDir: string): Promise<Map<string, ApplyAction>> {
  const r = await runCli(['apply', policy, '--state-dir', stateDir, '--json']);
  if (r.code !== 0 && r.code !== 1) throw new Error(`tier apply exited ${r.code}\n${r.stdout}${r.stderr}`);
  const acts = new Map<string, ApplyAction>();
  for (const l of r.stdout.trim().split('\n')) {
    const e = JSON.parse(l);
    if (e.type === 'action') acts.set(e.path, e);
  }
  return acts;
}

/** Reads `n` bytes at `off` with one pread (the daemon fetches just the chunk under it); async: the daemon may answer recalls of it. */
export async function readAt(p: string, off: number, n: number): Promise<Buffer> {
  const fh = await open(p, 'r');
  try {
    const b = Buffer.alloc(n);
    const { bytesRead } = await fh.read(b, 0, n, off);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Polls `cond` every 20 ms; returns how long it took. The cap is a generous functional
 * deadline (e.g. "dirty within a second"), not a speed assertion.
 */
export async function within(what: string, capMs: number, cond: () => boolean): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > capMs) throw new Error(`not within ${capMs} ms: ${what}`);
    await sleep(20);
  }
  return Date.now() - t0;
}

/** The daemon's first log line matching `pred`, within a generous functional deadline. */
export function logWithin(dd: DaemonProc, what: string, capMs: number, pred: (l: Record<string, unknown>) => boolean): Promise<unknown> {
  let t: NodeJS.Timeout | undefined;
  const cap = new Promise((_, reject) => (t = setTimeout(() => reject(new Error(`not within ${capMs} ms: ${what}`)), capMs)));
  return Promise.race([dd.waitLog(pred), cap]).finally(() => clearTimeout(t));
}

/** A shell command in another process (the daemon ignores events its own process causes). */
export function sh(script: string, ...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', script, 'sh', ...args], { stdio: 'ignore' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sh ${script}: exit ${code}`))));
  });
}

/** Reads ranges of `file` until stopped (test/daemon/stream-reader.mjs); stop() gives its counts. */
export function streamReader(file: string, original: string, offsetsMiB: string) {
  const proc = spawn(process.execPath, [join(REPO, 'test/daemon/stream-reader.mjs'), file, original, offsetsMiB], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.on('data', (c) => (out += c));
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return {
    proc,
    async stop(): Promise<{ reads: number; eio: number; mismatch: number; errors: string[] }> {
      proc.stdin!.end();
      await exited;
      return JSON.parse(out.trim());
    },
  };
}

/** GET /metrics from the daemon's control socket (the text `tier metrics` prints). */
export function getMetrics(stateDir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socketPath(stateDir), path: '/metrics', method: 'GET' }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (t += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(t) : reject(new Error(`GET /metrics: ${res.statusCode} ${t}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * test/daemon/fake-systemd.py on `sock`, standing in for PID 1's notify socket and fd store
 * (PID 1 here is not systemd): every datagram it receives, parsed, lands in `lines`.
 */
export function fakeSystemd(sock: string): { proc: ChildProcess; lines: Record<string, unknown>[] } {
  const proc = spawn('python3', [join(REPO, 'test/daemon/fake-systemd.py'), sock], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
  return { proc, lines };
}

/** One read of `len` bytes at `off` by test/daemon/reader.mjs (gives up after `timeoutSec`), compared with `original`. */
export function onceReader(file: string, original: string, off: number, len: number, timeoutSec = 600): Promise<{ ok: boolean; eio: number; mismatch: boolean; code: number | null }> {
  const p = spawn(process.execPath, [join(REPO, 'test/daemon/reader.mjs'), file, original, String(off), String(len), String(timeoutSec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (c) => (out += c));
  return new Promise((resolve) => p.on('exit', (code) => resolve({ code, ...JSON.parse(out.trim().split('\n').pop() || '{"eio":0,"ok":false,"mismatch":false}') })));
}
