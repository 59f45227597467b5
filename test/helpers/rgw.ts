// A real Ceph RGW for S3 tests. scripts/test.sh starts one for the whole suite and exports
// TIER_TEST_S3_ENDPOINT + AWS_* (eval of `scripts/rgw.sh start`); a test file run on its own
// starts a private one here (own RGW_DIR, free port) and stops it by pid when the process exits.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TUNING, S3_TUNING, type S3TierDecl } from '../../src/dsl/ast.js';

export interface S3TestEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

const RGW_SH = join(dirname(fileURLToPath(import.meta.url)), '../../scripts/rgw.sh');
let env: S3TestEnv | undefined;

function fromProcessEnv(): S3TestEnv | undefined {
  const e = process.env;
  if (!e.TIER_TEST_S3_ENDPOINT || !e.AWS_ACCESS_KEY_ID || !e.AWS_SECRET_ACCESS_KEY) return undefined;
  return {
    endpoint: e.TIER_TEST_S3_ENDPOINT,
    accessKeyId: e.AWS_ACCESS_KEY_ID,
    secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
    region: e.AWS_REGION ?? 'us-east-1',
  };
}

/** Starts a private RGW (about 15-20 s) and arranges for it to stop when this process exits. */
export function startPrivateRgw(): { env: S3TestEnv; stop: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tier-rgw-'));
  // Random port bases: private instances of parallel test files rarely meet (rgw.sh retries if they do).
  const base = 20_000 + Math.floor(Math.random() * 20_000);
  const childEnv: NodeJS.ProcessEnv = { ...process.env, RGW_DIR: dir, RGW_PORT_BASE: String(base), RGW_MON_PORT_BASE: String(base + 50) };
  delete childEnv.RGW_PORT;
  const r = spawnSync('bash', [RGW_SH, 'start'], {
    env: childEnv,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000, // the script has its own, shorter waits; this is the last resort
  });
  if (r.status !== 0) {
    execFileSync('bash', [RGW_SH, 'stop'], { env: childEnv, stdio: 'ignore' });
    throw new Error(`scripts/rgw.sh start failed (exit ${r.status ?? r.signal}):\n${r.stderr}`);
  }
  const vars: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/^export (\w+)=(.*)$/gm)) vars[m[1]!] = m[2]!;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      execFileSync('bash', [RGW_SH, 'stop'], { env: childEnv, stdio: ['ignore', 'ignore', 'inherit'] });
    } catch {
      /* best effort at exit */
    }
  };
  process.once('exit', stop);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      stop();
      process.exit(130);
    });
  }
  return {
    env: {
      endpoint: vars.TIER_TEST_S3_ENDPOINT!,
      accessKeyId: vars.AWS_ACCESS_KEY_ID!,
      secretAccessKey: vars.AWS_SECRET_ACCESS_KEY!,
      region: vars.AWS_REGION ?? 'us-east-1',
    },
    stop,
  };
}

/**
 * Endpoint and credentials of the test RGW. Also puts the credentials into process.env,
 * because tiers read credentials only through the AWS default chain.
 */
export function s3TestEnv(): S3TestEnv {
  if (!env) {
    env = fromProcessEnv() ?? startPrivateRgw().env;
    process.env.AWS_ACCESS_KEY_ID = env.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = env.secretAccessKey;
    process.env.AWS_REGION ??= env.region;
  }
  return env;
}

/** Creates a uniquely named, empty bucket (SigV4 by curl: tests stay free of @aws-sdk). */
export function freshBucket(e: S3TestEnv = s3TestEnv(), hint = 't'): string {
  const name = `${hint.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 20)}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  s3Curl(e, 'PUT', `/${name}`);
  return name;
}

/** One signed S3 request with curl; returns the response body. Throws on HTTP errors. */
export function s3Curl(e: S3TestEnv, method: string, path: string, extra: string[] = []): string {
  return execFileSync(
    'curl',
    ['-sS', '--fail-with-body', '-X', method, '--aws-sigv4', `aws:amz:${e.region}:s3`, '--user', `${e.accessKeyId}:${e.secretAccessKey}`,
      '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD', ...extra, `${e.endpoint}${path}`],
    { encoding: 'utf8' },
  );
}

/** An S3 tier block pointing at the test RGW (path style, checksums only when required). */
export function s3TestDecl(bucket: string, over: Partial<S3TierDecl> = {}, e: S3TestEnv = s3TestEnv()): S3TierDecl {
  return {
    kind: 's3',
    name: 'rgw',
    span: { file: 'test.hsmpolicy', line: 1, col: 1, length: 1 },
    tuning: { ...DEFAULT_TUNING, ...S3_TUNING, timeoutMs: 10_000 }, // an s3 tier's defaults (dsl/ast.ts)
    bucket,
    prefix: 'tier/',
    endpoint: e.endpoint,
    region: e.region,
    pathStyle: true,
    checksum: 'when_required',
    ...over,
  };
}
