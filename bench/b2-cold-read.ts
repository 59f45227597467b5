// 2. Cold sequential read of a released file vs the raw tier read of the same object in
// the same run. Goal >= 0.8 (throughput ratio). Local tier: `cat` of the tier's object file
// after dropping its pages (posix_fadvise DONTNEED) vs `cat` of the released file (object
// dropped again). S3: one full GetObject with the SDK, body consumed, vs `cat`.
// The S3 file stays recalled for benchmark 4.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { Ctx } from './lib/context.js';
import { localObjectOf, release, s3KeyOf, writeRandomFile, type World } from './lib/setup.js';
import { dropFileCache, fmtBytes, fmtMs, fmtRate, log, nowMs, sh, timeAsync, type Result } from './lib/util.js';

export interface ColdOut {
  results: Result[];
  /** The file released to rgw and read whole (fully recalled now). */
  recalledS3: string;
}

async function rawGet(w: World, key: string): Promise<{ ms: number; bytes: number }> {
  const t0 = nowMs();
  const r = await w.s3.send(new GetObjectCommand({ Bucket: w.bucket, Key: key }));
  let bytes = 0;
  for await (const c of r.Body as AsyncIterable<Buffer>) bytes += c.length;
  return { ms: nowMs() - t0, bytes };
}

export async function benchColdRead(w: World, ctx: Ctx): Promise<ColdOut> {
  const dir = join(w.data, 'b2');
  mkdirSync(dir);
  const size = ctx.bigSize;
  const local = join(dir, 'local.bin');
  const s3 = join(dir, 's3.bin');
  log(`2: writing two ${fmtBytes(size)} files`);
  writeRandomFile(local, size);
  writeRandomFile(s3, size);
  sh('sync', []);
  await release(w, [local], 'loc');
  log('2: released to loc; releasing to rgw');
  await release(w, [s3], 'rgw');
  const out: Result[] = [];

  const obj = localObjectOf(w.tierDir, local);
  dropFileCache(obj);
  const rawMs = await timeAsync('cat', [obj]);
  dropFileCache(obj);
  const tierMs = await timeAsync('cat', [local]);
  log(`2 local: raw ${fmtMs(rawMs)}, tier ${fmtMs(tierMs)}`);
  sh('cmp', [local, obj]); // a fast read of wrong bytes would be no result
  out.push({
    id: '2a',
    name: `cold sequential read (cat) of a released ${fmtBytes(size)} file, local tier`,
    figure: `${fmtRate(size, tierMs)} (${fmtMs(tierMs)})`,
    baseline: `cat of the tier object, cache dropped: ${fmtRate(size, rawMs)} (${fmtMs(rawMs)})`,
    ratio: rawMs / tierMs,
    dir: '>=',
    limit: 0.8,
    ratioIs: 'tier throughput / raw throughput',
  });

  const key = s3KeyOf(w, s3);
  const raw = await rawGet(w, key);
  if (raw.bytes !== size) throw new Error(`raw GET of ${key}: ${raw.bytes} bytes, expected ${size}`);
  const s3Ms = await timeAsync('cat', [s3]);
  log(`2 s3: raw GET ${fmtMs(raw.ms)}, tier ${fmtMs(s3Ms)}`);
  out.push({
    id: '2b',
    name: `cold sequential read (cat) of a released ${fmtBytes(size)} file, S3 tier (Ceph RGW, loopback)`,
    figure: `${fmtRate(size, s3Ms)} (${fmtMs(s3Ms)})`,
    baseline: `one SDK GetObject of the object: ${fmtRate(size, raw.ms)} (${fmtMs(raw.ms)})`,
    ratio: raw.ms / s3Ms,
    dir: '>=',
    limit: 0.8,
    ratioIs: 'tier throughput / raw GET throughput',
  });
  return { results: out, recalledS3: s3 };
}
