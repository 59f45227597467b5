// Per-request cost of the S3 tier's hot requests: the SDK path vs the light path
// (src/tiers/s3-light.ts), same tier code above them. CPU (user+sys of this process) and wall
// time per request for a 64 KiB put, a HEAD (stat) and a 4 KiB ranged GET, `conc` at a time.
// The two paths alternate in rounds so a busy machine weighs on both alike.
//   source /work/rgw.env; node --import tsx bench/s3-light.ts [n=2000] [conc=8]
// Needs TIER_TEST_S3_ENDPOINT + AWS_* (an RGW of your own: scripts/rgw.sh start); deletes its objects at the end.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { S3Tier } from '../src/tiers/s3.js';
import { freshBucket, s3TestDecl, s3TestEnv } from '../test/helpers/rgw.js';

const n = Number(process.argv[2] ?? 2000);
const conc = Number(process.argv[3] ?? 8);
const env = s3TestEnv();
const bucket = freshBucket(env, 'bench-light');
const decl = s3TestDecl(bucket, { tuning: { ...s3TestDecl(bucket).tuning, concurrency: conc, timeoutMs: 60_000 } });
const data = randomBytes(64 * 1024);
const meta = { sha256: '', size: data.length, path: '/b/f', mode: 0o100644, uid: 0, gid: 0, mtimeMs: 0 };

function mkTier(sdkOnly: boolean): S3Tier {
  if (sdkOnly) process.env.TIER_S3_SDK_ONLY = '1';
  else delete process.env.TIER_S3_SDK_ONLY;
  const t = new S3Tier(decl);
  delete process.env.TIER_S3_SDK_ONLY;
  return t;
}

async function pool(count: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < count) await fn(next++);
  }));
}

type Op = 'put 64 KiB' | 'stat' | 'get 4 KiB';
const ops: Record<Op, (t: S3Tier, tag: string, i: number) => Promise<unknown>> = {
  'put 64 KiB': (t, tag, i) => t.put(`${tag}/${i}`, Readable.from([data]), data.length, meta),
  stat: (t, tag, i) => t.stat(`${tag}/${i}`),
  'get 4 KiB': (t, tag, i) => t.get(`${tag}/${i}`, { offset: 4096, length: 4096 }),
};

async function measure(t: S3Tier, tag: string, op: Op, count: number): Promise<{ cpuUs: number; wallMs: number }> {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  await pool(count, (i) => ops[op](t, tag, i));
  const c = process.cpuUsage(c0);
  return { cpuUs: (c.user + c.system) / count, wallMs: (performance.now() - w0) / count };
}

const tiers = { sdk: mkTier(true), light: mkTier(false) };
// Warm both (connections, credentials, the light path's probe).
for (const [tag, t] of Object.entries(tiers)) for (const op of Object.keys(ops) as Op[]) await measure(t, `${tag}-warm`, op, conc);
const rounds = 2;
const acc: Record<string, { cpuUs: number; wallMs: number }[]> = {};
for (let r = 0; r < rounds; r++) {
  for (const [tag, t] of Object.entries(tiers)) {
    for (const op of Object.keys(ops) as Op[]) {
      const m = await measure(t, `${tag}-${r}`, op, Math.floor(n / rounds));
      (acc[`${op}|${tag}`] ??= []).push(m);
    }
  }
}
console.log(`load ${(await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').trim()}; ${n} requests per op and path, ${conc} at a time`);
for (const op of Object.keys(ops) as Op[]) {
  const avg = (tag: string, f: 'cpuUs' | 'wallMs') => acc[`${op}|${tag}`]!.reduce((s, m) => s + m[f], 0) / rounds;
  const [sc, lc, sw, lw] = [avg('sdk', 'cpuUs'), avg('light', 'cpuUs'), avg('sdk', 'wallMs'), avg('light', 'wallMs')];
  console.log(`${op.padEnd(11)} CPU/request: sdk ${sc.toFixed(0)} us, light ${lc.toFixed(0)} us (${(sc / lc).toFixed(2)}x less); wall/request: sdk ${sw.toFixed(2)} ms, light ${lw.toFixed(2)} ms (${(sw / lw).toFixed(2)}x)`);
}
// Leave nothing behind on the RGW (its memstore is small): every object written here goes.
const keys: string[] = [];
for await (const o of tiers.light.list('')) keys.push(o.key);
await pool(keys.length, (i) => tiers.light.delete(keys[i]!));
for (const t of Object.values(tiers)) await t.close();
