// The world the benchmarks run in: a loop-mounted ext4 filesystem (never `/`), two local
// tiers and one S3 tier (the Ceph RGW that bench/run.sh started), and the real daemon
// (`tier daemon POLICY --state-dir DIR`, the CLI as a child process). Releases go through
// the daemon's control socket, the same request `tier apply` sends.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { connectDaemon, type DaemonClient } from '../../src/daemon/client.js';
import { decodeRecord, XATTR_STATE, type StateRecord } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { rclonePurge } from './rclone.js';
import { log, nowMs, sh } from './util.js';

export const REPO = new URL('../..', import.meta.url).pathname;

export interface S3Env {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export function s3EnvFromProcess(): S3Env {
  const e = process.env;
  if (!e.TIER_TEST_S3_ENDPOINT || !e.AWS_ACCESS_KEY_ID || !e.AWS_SECRET_ACCESS_KEY)
    throw new Error('no RGW: TIER_TEST_S3_ENDPOINT and AWS_* must be set (bench/run.sh starts one with scripts/rgw.sh)');
  return { endpoint: e.TIER_TEST_S3_ENDPOINT, accessKeyId: e.AWS_ACCESS_KEY_ID, secretAccessKey: e.AWS_SECRET_ACCESS_KEY, region: e.AWS_REGION ?? 'us-east-1' };
}

/** A raw SDK client for the baselines (RGW 16 needs checksums only when required). */
export function s3Client(e: S3Env): S3Client {
  return new S3Client({
    endpoint: e.endpoint,
    region: e.region,
    forcePathStyle: true,
    credentials: { accessKeyId: e.accessKeyId, secretAccessKey: e.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export interface World {
  base: string;
  mnt: string;
  /** Managed data lives under here (the fileset root). */
  data: string;
  tierDir: string;
  fineTierDir: string;
  stateDir: string;
  policyFile: string;
  bucket: string;
  prefix: string;
  s3env: S3Env;
  s3: S3Client;
  daemon: ChildProcess;
  client: DaemonClient;
  close(): Promise<void>;
}

/** The loop image: big enough for every benchmark's files, inodes for the scan tree. */
function mountLoop(base: string, sizeMiB: number, inodes: number): string {
  const img = join(base, 'fs.img');
  const mnt = join(base, 'mnt');
  mkdirSync(mnt);
  sh('truncate', ['-s', `${sizeMiB}M`, img]);
  // Inode tables and journal zeroed now, not by ext4lazyinit in the background for the first
  // minute: its writes slowed the first benchmarks' writes (cp in bench 2: 0.4 s -> 1 s).
  sh('mkfs.ext4', ['-q', '-F', '-N', String(inodes), '-E', 'lazy_itable_init=0,lazy_journal_init=0', img]);
  sh('mount', ['-o', 'loop', img, mnt]);
  return mnt;
}

function unmount(mnt: string): void {
  try {
    sh('umount', [mnt]);
  } catch {
    sh('umount', ['-l', mnt]);
  }
}

export function policyText(w: { data: string; tierDir: string; fineTierDir: string; bucket: string; prefix: string; s3env: S3Env }): string {
  return (
    `# Written by bench/lib/setup.ts. loc and rgw use the default tuning (chunk 16KiB, readahead\n` +
    `# 16MiB, 64MiB for s3); fine is a local tier with chunk 1MiB readahead 1MiB. Default recall settings.\n` +
    `tier loc { local "${w.tierDir}" }\n` +
    `tier fine { local "${w.fineTierDir}" chunk 1MiB readahead 1MiB }\n` +
    `tier rgw {\n  s3 bucket "${w.bucket}" prefix "${w.prefix}" endpoint "${w.s3env.endpoint}" region "${w.s3env.region}"\n` +
    `  path_style true checksum when_required\n}\n` +
    `fileset data { root "${w.data}" }\n` +
    `policy bench on data {\n  rule none: name ~ "__never__" -> keep\n}\n`
  );
}

export interface WorldOptions {
  imageMiB: number;
  inodes: number;
}

export async function makeWorld(o: WorldOptions): Promise<World> {
  const base = mkdtempSync('/var/tmp/tier-bench-');
  const cleanups: (() => void | Promise<void>)[] = [() => rmSync(base, { recursive: true, force: true })];
  // Once only: a Ctrl-C handler and the run's own `finally` may both ask for it.
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      for (const c of cleanups.reverse()) {
        try {
          await c();
        } catch (e) {
          log(`cleanup: ${(e as Error).message}`);
        }
      }
      cleanups.length = 0;
    })());
  try {
    const mnt = mountLoop(base, o.imageMiB, o.inodes);
    cleanups.push(() => unmount(mnt));
    const data = join(mnt, 'data');
    const tierDir = join(base, 'tier-loc');
    const fineTierDir = join(base, 'tier-fine');
    const stateDir = join(base, 'state');
    for (const d of [data, tierDir, fineTierDir, stateDir]) mkdirSync(d, { recursive: true });

    const s3env = s3EnvFromProcess();
    const s3 = s3Client(s3env);
    cleanups.push(() => s3.destroy());
    const bucket = `bench-${Date.now().toString(36)}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    // The RGW may outlive the run (TIER_TEST_S3_ENDPOINT given): leave no objects behind.
    cleanups.push(() => rclonePurge(s3env, bucket, ''));
    const prefix = 't/';

    const policyFile = join(base, 'bench.hsmpolicy');
    writeFileSync(policyFile, policyText({ data, tierDir, fineTierDir, bucket, prefix, s3env }));

    // BENCH_DAEMON_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"): node flags for the
    // daemon, which passes them on to its worker (profiling the real path).
    const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const daemon = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/cli/main.ts', 'daemon', policyFile, '--state-dir', stateDir, '--log-level', 'warn'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let errText = '';
    daemon.stderr!.setEncoding('utf8').on('data', (c: string) => {
      errText = (errText + c).slice(-20000);
    });
    const exited = new Promise<void>((res) => daemon.on('exit', () => res()));
    cleanups.push(async () => {
      if (daemon.exitCode === null && daemon.signalCode === null) {
        daemon.kill('SIGTERM');
        const t = setTimeout(() => daemon.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(t);
      }
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      daemon.stdout!.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        if (out.split('\n').includes('ready')) resolve();
      });
      daemon.on('exit', (code, sig) => reject(new Error(`tier daemon exited (${code ?? sig}) before ready:\n${errText}`)));
      setTimeout(() => reject(new Error(`tier daemon not ready after 60 s:\n${errText}`)), 60_000).unref();
    });
    const client = await connectDaemon(stateDir);
    if (!client) throw new Error(`daemon ready but no control socket in ${stateDir}`);
    return { base, mnt, data, tierDir, fineTierDir, stateDir, policyFile, bucket, prefix, s3env, s3, daemon, client, close };
  } catch (e) {
    await close();
    throw e;
  }
}

interface ManualResult {
  done: number;
  skipped: number;
  busy: number;
  failures: { path: string; message: string }[];
}

/**
 * Releases files through the daemon (one control request); throws unless all are done.
 * Files reported busy (a lease break: some process opened the file meanwhile) are retried
 * twice, as a user re-running apply would; each retry is logged.
 */
export async function release(w: World, paths: string[], tier: string): Promise<void> {
  let todo = paths;
  for (let attempt = 0; ; attempt++) {
    const busy: string[] = [];
    const r = (await w.client.manual('release', { paths: todo, tier }, (ev) => {
      const e = ev as { path?: string; status?: string };
      if (e.status === 'busy' && e.path) busy.push(e.path);
    })) as ManualResult;
    if (r.done + r.busy === todo.length && r.busy > 0 && attempt < 2) {
      log(`release to ${tier}: ${r.busy} file(s) busy, retrying (${busy.slice(0, 2).join(', ')})`);
      todo = busy.length === r.busy ? busy : todo.filter((p) => recordOf(p)?.state !== 'released');
      await sleep(500);
      continue;
    }
    if (r.done !== todo.length)
      throw new Error(`release to ${tier}: ${r.done}/${todo.length} done, ${r.skipped} skipped, ${r.busy} busy; ${JSON.stringify(r.failures.slice(0, 3))}`);
    return;
  }
}

/**
 * Waits (at most 60 s) until none of `paths` is still 'partial': the daemon syncs and records
 * a file that became whole after answering the read that completed it.
 */
export async function settled(paths: string[]): Promise<void> {
  const t0 = Date.now();
  while (paths.some((p) => recordOf(p)?.state === 'partial')) {
    if (Date.now() - t0 > 60_000) throw new Error(`still partial after 60 s: ${paths.filter((p) => recordOf(p)?.state === 'partial').slice(0, 2).join(', ')}`);
    await sleep(20);
  }
}

/** The daemon's recall counters so far, from one status request: events seen and bytes fetched. */
export async function recallCounters(w: World): Promise<{ events: number; fetched: number }> {
  const r = (await w.client.status()).recall as { events?: number; bytesFetched?: number };
  return { events: Number(r.events ?? 0), fetched: Number(r.bytesFetched ?? 0) };
}

export async function bytesFetched(w: World): Promise<number> {
  return (await recallCounters(w)).fetched;
}

export async function recallEvents(w: World): Promise<number> {
  return (await recallCounters(w)).events;
}

export function recordOf(path: string): StateRecord | null {
  return decodeRecord(lgetxattr(path, XATTR_STATE));
}

/** The S3 key (in the bench bucket) of a file released to the rgw tier. */
export function s3KeyOf(w: World, path: string): string {
  const r = recordOf(path);
  if (!r?.copy || r.copy.tier !== 'rgw') throw new Error(`${path}: not released to rgw (record ${JSON.stringify(r)})`);
  return `${w.prefix}${r.copy.key}`;
}

/** Path of a file's object in a local tier directory. */
export function localObjectOf(tierDir: string, path: string): string {
  const r = recordOf(path);
  if (!r?.copy) throw new Error(`${path}: no copy in its record`);
  return join(tierDir, r.copy.key);
}

/** Writes `size` bytes of incompressible data (from a 16 MiB random block, varied per MiB). */
export function writeRandomFile(path: string, size: number): void {
  sh('bash', ['-c', `head -c ${size} /dev/urandom > '${path}'`]);
}

export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** One GetObject of `key` written to `path` as its bytes arrive (a download): its wall time and size. */
export async function downloadTo(w: World, key: string, path: string): Promise<{ ms: number; bytes: number }> {
  const t0 = nowMs();
  const r = await w.s3.send(new GetObjectCommand({ Bucket: w.bucket, Key: key }));
  const fd = openSync(path, 'w');
  let bytes = 0;
  try {
    for await (const c of r.Body as AsyncIterable<Buffer>) {
      for (let n = 0; n < c.length; ) n += writeSync(fd, c, n, c.length - n, bytes + n);
      bytes += c.length;
    }
  } finally {
    closeSync(fd);
  }
  return { ms: nowMs() - t0, bytes };
}
