// The peer: Debian rclone against the same RGW, configured through environment variables
// (no config file), run without AWS_CA_BUNDLE (with it every S3 call fails, test-infra.md).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Env } from './setup.js';
import { sh, timeAsync } from './util.js';

export function rcloneEnv(e: S3Env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RCLONE_CONFIG_RGW_TYPE: 's3',
    RCLONE_CONFIG_RGW_PROVIDER: 'Ceph',
    RCLONE_CONFIG_RGW_ENDPOINT: e.endpoint,
    RCLONE_CONFIG_RGW_ACCESS_KEY_ID: e.accessKeyId,
    RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY: e.secretAccessKey,
    RCLONE_CONFIG_RGW_REGION: e.region,
    RCLONE_CONFIG_RGW_ENV_AUTH: 'false',
  };
  delete env.AWS_CA_BUNDLE;
  return env;
}

export interface RcloneMount {
  dir: string;
  close(): Promise<void>;
}

const isMounted = (dir: string): boolean => {
  try {
    sh('mountpoint', ['-q', dir]);
    return true;
  } catch {
    return false;
  }
};

/** `rclone mount rgw:BUCKET DIR --vfs-cache-mode full` with a fresh cache dir under `base`. */
export async function rcloneMount(e: S3Env, bucket: string, base: string): Promise<RcloneMount> {
  const root = mkdtempSync(join(base, 'rclone-'));
  const dir = join(root, 'mnt');
  const cache = join(root, 'cache');
  mkdirSync(dir);
  mkdirSync(cache);
  const p: ChildProcess = spawn('rclone', ['mount', `rgw:${bucket}`, dir, '--vfs-cache-mode', 'full', '--cache-dir', cache], {
    env: rcloneEnv(e),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  p.stderr!.on('data', (c) => (err = (err + c).slice(-4000)));
  const exited = new Promise<void>((res) => p.on('exit', () => res()));
  const close = async () => {
    if (isMounted(dir)) {
      try {
        sh('fusermount3', ['-u', dir]);
      } catch {
        sh('fusermount3', ['-uz', dir]);
      }
    }
    const t = setTimeout(() => p.kill('SIGTERM'), 10_000);
    if (p.exitCode === null && p.signalCode === null) await exited;
    clearTimeout(t);
    rmSync(root, { recursive: true, force: true });
  };
  for (let i = 0; i < 200 && !isMounted(dir); i++) {
    if (p.exitCode !== null) throw new Error(`rclone mount exited ${p.exitCode}: ${err}`);
    await sleep(50);
  }
  if (!isMounted(dir)) {
    await close();
    throw new Error(`rclone mount not up after 10 s: ${err}`);
  }
  return { dir, close };
}

/** Wall time of `rclone copy SRC rgw:BUCKET/DEST` (default settings: 4 transfers). */
export function rcloneCopy(e: S3Env, src: string, bucket: string, dest: string): Promise<number> {
  return timeAsync('rclone', ['copy', src, `rgw:${bucket}/${dest}`], rcloneEnv(e));
}

/** Deletes everything under rgw:BUCKET/DEST (the bucket itself when dest is ''). */
export async function rclonePurge(e: S3Env, bucket: string, dest: string): Promise<void> {
  await timeAsync('rclone', ['purge', dest ? `rgw:${bucket}/${dest}` : `rgw:${bucket}`], rcloneEnv(e));
}
