// The reliability suite runs `tier daemon` from the compiled dist/ (bin/tier.js): the crash
// test restarts the daemon dozens of times, and a tsx start costs about twice as much.
// scripts/test.sh builds dist/ before the tests; a file run on its own rebuilds it when any
// source is newer. Everything else (policies, patterns, released-file setup) comes from
// test/helpers/daemon.ts.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from '../helpers/daemon.js';
import { decodeRecord, XATTR_STATE, type StateRecord } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';

function newestMtime(dir: string): number {
  let m = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    m = Math.max(m, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return m;
}

/** Builds dist/ when a source file is newer than the last build. */
export function ensureDist(): void {
  const main = join(REPO, 'dist/cli/main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newestMtime(join(REPO, 'src'))) return;
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO, stdio: 'ignore' });
  } catch {
    // Type errors in files others are editing still emit JavaScript (noEmitOnError is off).
  }
}

export interface Daemon {
  proc: ChildProcess;
  ready: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  /** Every warn/error log line so far (stderr() keeps only the tail). */
  warnings: string[];
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startDistDaemon(policy: string, stateDir: string, env: Record<string, string> = {}): Daemon {
  const proc = spawn(process.execPath, [join(REPO, 'bin/tier.js'), 'daemon', policy, '--state-dir', stateDir], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let err = '';
  let out = '';
  const warnings: string[] = [];
  // Keep draining stderr (a full pipe would stall the daemon), keep only the tail.
  const copy = process.env.TIER_TEST_DAEMON_LOG; // debugging: keep the daemon's whole stderr
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => {
    if (copy) appendFileSync(copy, c);
    err = (err + c).slice(-32_000);
    for (const line of c.split('\n')) if (/"level":"(warn|error)"/.test(line)) warnings.push(line);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  const ready = new Promise<void>((res, rej) => {
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (/^ready$/m.test(out)) res();
    });
    void exited.then((x) => rej(new Error(`daemon exited (${x.code ?? x.signal}) before ready:\n${err}`)));
  });
  ready.catch(() => {});
  return {
    proc,
    ready,
    exited,
    stderr: () => err,
    warnings,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Reads a file asynchronously (a released file's recall is answered by another process). */
export async function shaOfFile(path: string): Promise<string> {
  return sha256(await readFile(path));
}

export function recordOf(path: string): StateRecord | null {
  try {
    return decodeRecord(lgetxattr(path, XATTR_STATE));
  } catch {
    return null;
  }
}
