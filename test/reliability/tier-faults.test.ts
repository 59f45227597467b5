// Tier faults under recall (issue 7), S3 on the real Ceph RGW: the daemon's tier endpoint is
// a FAULT-INJECTION proxy (test/tiers/fault-proxy.ts) that we stall and stop; objects are
// deleted, shortened or overwritten with wrong bytes of the same size on RGW itself. A
// reader (test/daemon/reader.mjs: any wrong byte is reported as a mismatch) must get EIO,
// never wrong bytes; once the server is back, the same files read back byte-exact.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { freshBucket, s3Curl, s3TestEnv } from '../helpers/rgw.js';
import { FaultProxy } from '../tiers/fault-proxy.js';
import { pattern, REPO } from '../helpers/daemon.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { ensureDist, recordOf, startDistDaemon, type Daemon } from './dist-daemon.js';

const MiB = 1024 * 1024;
const TIMEOUT_S = 2;

interface Read {
  code: number | null;
  eio: number;
  ok: boolean;
  mismatch: boolean;
}

/** One attempt at reading [0, len) of `file`, compared with `original` (reader.mjs). */
function readOnce(file: string, original: string, len: number): Promise<Read> {
  const p = spawn(process.execPath, [join(REPO, 'test/daemon/reader.mjs'), file, original, '0', String(len), '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (c) => (out += c));
  p.stderr.on('data', (c) => (err += c));
  return new Promise((resolve) =>
    p.on('exit', (code) => {
      const last = out.trim().split('\n').pop();
      resolve({ code, ...(last ? JSON.parse(last) : { eio: 0, ok: false, mismatch: false, err }) });
    }),
  );
}

/** A plain forwarder on a given port: the S3 server "back up" after the proxy went down. */
function passthrough(port: number, target: URL): Promise<Server> {
  const s = createServer((c) => {
    const u = createConnection({ host: target.hostname, port: Number(target.port) });
    c.pipe(u).pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  });
  return new Promise((res) => s.listen(port, '127.0.0.1', () => res(s)));
}

describe('S3 tier faults during recall (real RGW behind a fault-injection proxy)', () => {
  const env = s3TestEnv();
  const upstream = new URL(env.endpoint);
  const bucket = freshBucket(env, 'reliab');
  let fs: LoopFs;
  let stateDir: string;
  let policy: string;
  let proxy: FaultProxy;
  let back: Server | undefined;
  let daemon: Daemon;
  const files = new Map<string, { path: string; original: string; size: number }>();
  const SIZES: Record<string, number> = {
    stall: 200_000,
    down: 300_000,
    gone: 100_000,
    corrupt: 1 * MiB + 3, // one 4 MiB chunk: the whole object in one GET
    short: 3 * MiB,
    corruptBig: 9 * MiB + 17, // three chunks
  };
  const objectPath = (name: string) => `/${bucket}/t/${recordOf(files.get(name)!.path)!.copy!.key}`;

  before(async () => {
    ensureDist();
    proxy = await FaultProxy.start(upstream.hostname, Number(upstream.port));
    fs = mountLoopFs('ext4');
    stateDir = join(fs.scratch, 'state');
    const data = join(fs.dir, 'data');
    mkdirSync(data);
    for (const [i, [name, size]] of Object.entries(SIZES).entries()) {
      const content = pattern(size, 500 + i);
      const path = join(data, `${name}.bin`);
      const original = join(fs.scratch, `${name}.orig`);
      writeFileSync(path, content);
      writeFileSync(original, content);
      files.set(name, { path, original, size });
    }
    policy = join(fs.scratch, 's3.hsmpolicy');
    writeFileSync(
      policy,
      `tier rgw { s3 bucket "${bucket}" prefix "t/" endpoint "${proxy.endpoint}" region "${env.region}" path_style true timeout ${TIMEOUT_S}s }\n` +
        `fileset data { root "${data}" }\npolicy p on data {\n  rule all: size > 0B -> release to rgw\n}\n`,
    );
    daemon = startDistDaemon(policy, stateDir);
    await daemon.ready;
    await (await connectDaemon(stateDir))!.apply({ policyFile: policy, dryRun: false });
    for (const f of files.values()) assert.equal(recordOf(f.path)?.state, 'released', f.path);
  });
  after(async () => {
    await daemon?.stop();
    await proxy?.close();
    back?.close();
    fs?.unmount();
  });

  const expectEio = async (name: string, why: string) => {
    const f = files.get(name)!;
    const r = await readOnce(f.path, f.original, f.size);
    assert.equal(r.mismatch, false, `${name}: ${why}: no wrong bytes`);
    assert.equal(r.eio, 1, `${name}: ${why}: the reader gets EIO (${JSON.stringify(r)})`);
  };
  const expectExact = async (name: string) => {
    const f = files.get(name)!;
    const r = await readOnce(f.path, f.original, f.size);
    assert.deepEqual({ ok: r.ok, mismatch: r.mismatch }, { ok: true, mismatch: false }, `${name} reads back byte-exact`);
  };

  test('object deleted (NoSuchKey), shortened: EIO, never wrong bytes', async () => {
    s3Curl(env, 'DELETE', objectPath('gone'));
    await expectEio('gone', 'object deleted');
    const shortFile = join(fs.scratch, 'short.bytes');
    writeFileSync(shortFile, pattern(MiB, 1)); // a shorter object under the same key
    s3Curl(env, 'PUT', objectPath('short'), ['--data-binary', `@${shortFile}`]);
    await expectEio('short', 'object shorter than the record');
  });

  test('object overwritten with wrong bytes of the same size (single-chunk file): EIO', async () => {
    const f = files.get('corrupt')!;
    const wrong = join(fs.scratch, 'corrupt.bytes');
    writeFileSync(wrong, pattern(f.size, 999));
    s3Curl(env, 'PUT', objectPath('corrupt'), ['--data-binary', `@${wrong}`]);
    await expectEio('corrupt', 'corrupt object');
  });

  // Each chunk is checked against its SHA-256 in the `${key}.sums` object (src/recall/fill.ts).
  test('object overwritten with wrong bytes of the same size (multi-chunk file): EIO', async () => {
    const f = files.get('corruptBig')!;
    const wrong = join(fs.scratch, 'corrupt-big.bytes');
    writeFileSync(wrong, pattern(f.size, 998));
    s3Curl(env, 'PUT', objectPath('corruptBig'), ['--data-binary', `@${wrong}`]);
    await expectEio('corruptBig', 'corrupt object');
  });

  test('server stalled, then stopped: EIO within the tier timeout; back up: reads recover by themselves', async () => {
    proxy.stall();
    await expectEio('stall', 'server stalled');
    await proxy.close(); // down: connections reset, the port refuses
    await expectEio('down', 'server stopped');
    back = await passthrough(proxy.port, upstream);
    await expectExact('stall');
    await expectExact('down');
    const status = await (await connectDaemon(stateDir))!.status();
    assert.ok(status.pid > 0, 'the same daemon serves on');
  });
});
