// 2. Cold sequential read of a released file vs the raw tier read of the same object in
// the same run. Goal >= 0.8 (throughput ratio). Local tier: the issue's baseline, `cp` of
// the tier's object file onto the released file's filesystem after dropping the object's
// pages (posix_fadvise DONTNEED; the copy is removed after each round), vs `cat` of the
// released file (object dropped again); `cat` of the object alone (read only, no write) is
// kept in the note. S3: one full GetObject with the SDK, body consumed, vs `cat`; the note
// also has the same GetObject written to a file on the released file's filesystem (what a
// download does, and what cp is for the local tier): it pays the page-cache fill a recall
// pays and the body-consuming GET does not, which on this VM's memory is most of the gap.
// Both notes print the verify floor measured in the same run: SHA-256 of the file's size
// on one CPU (the recall hashes every byte it writes; the baselines hash nothing).
// The S3 file stays recalled for benchmark 4. The notes say how much CPU the daemon used
// during each tier read and how busy the machine was (2 vCPUs: bound by CPU, or waiting);
// the S3 note gives each round's own ratio with the CPU time of both its steps (daemon,
// Ceph's radosgw + ceph-osd, the whole machine).
import { createHash, randomFillSync } from 'node:crypto';
import { mkdirSync, unlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { Ctx } from './lib/context.js';
import { cephPids, cpuOver, type CpuUse } from './lib/cpu.js';
import { downloadTo, localObjectOf, release, s3KeyOf, settled, writeRandomFile, type World } from './lib/setup.js';
import { dropFileCache, fmtBytes, fmtMs, fmtRate, log, median, nowMs, sh, timeAsync, type Result } from './lib/util.js';

export interface ColdOut {
  results: Result[];
  /** The file released to rgw and read whole (fully recalled now). */
  recalledS3: string;
}

function cpuText(c: CpuUse): string {
  return `daemon CPU ${fmtMs(c.treeMs)}, machine ${(c.busy * 100).toFixed(0)}% busy`;
}

/** MiB/s at which the machine hands out fresh memory now (bench/memtouch.c): low means host faults. */
function touchRate(ctx: Ctx): number {
  return Number(sh(join(ctx.cbin, 'memtouch'), ['256']).trim());
}

const touchText = (xs: number[]): string => `${Math.min(...xs)}-${Math.max(...xs)} MiB/s`;

async function rawGet(w: World, key: string): Promise<{ ms: number; bytes: number }> {
  const t0 = nowMs();
  const r = await w.s3.send(new GetObjectCommand({ Bucket: w.bucket, Key: key }));
  let bytes = 0;
  for await (const c of r.Body as AsyncIterable<Buffer>) bytes += c.length;
  return { ms: nowMs() - t0, bytes };
}

/**
 * The verify floor: ms to SHA-256 `size` bytes in 16 KiB units on this thread, from memory
 * (best of 2). Every recalled byte is hashed once, and `cp` or a GetObject hashes nothing:
 * on 2 vCPUs this, the read and the page-cache fill share the machine.
 */
function hashFloorMs(size: number): number {
  const buf = randomFillSync(Buffer.allocUnsafe(16 * 1024 * 1024));
  let best = Infinity;
  for (let k = 0; k < 2; k++) {
    const t0 = nowMs();
    for (let done = 0; done < size; done += buf.length) {
      for (let at = 0; at < buf.length; at += 16 * 1024) createHash('sha256').update(buf.subarray(at, at + 16 * 1024)).digest();
    }
    best = Math.min(best, nowMs() - t0);
  }
  return best;
}

/** One GetObject written to `path` as its bytes arrive (a download), then `path` removed. */
async function getToFile(w: World, key: string, path: string): Promise<{ ms: number; bytes: number }> {
  const r = await downloadTo(w, key, path);
  unlinkSync(path);
  return r;
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
  const hashMs = hashFloorMs(size);
  const floorText = `SHA-256 of ${fmtBytes(size)} in 16 KiB units on one CPU here (what verifying every recalled byte costs): ${fmtMs(hashMs)}`;

  // Rounds: after a read the file is whole again (state archived); releasing it again
  // reuses the copy (no upload), so every round reads a freshly released file.
  const rounds = 3;
  const obj = localObjectOf(w.tierDir, local);
  const copy = join(dir, 'cp-of-object.bin');
  const rawL: number[] = [];
  const catL: number[] = [];
  const tierL: number[] = [];
  const cpuL: CpuUse[] = [];
  const touchL: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r > 0) await settled([local]).then(() => release(w, [local], 'loc'));
    // Each timed step starts with nothing dirty: else the previous step's writeback (the
    // recall's 512 MiB, cp's copy) throttles the next one's writes, and cp swung 0.4-1.7 s.
    sh('sync', []);
    dropFileCache(obj);
    touchL.push(touchRate(ctx));
    rawL.push(await timeAsync('cp', [obj, copy]));
    sh('rm', ['-f', copy]);
    sh('sync', []);
    dropFileCache(obj);
    catL.push(await timeAsync('cat', [obj]));
    dropFileCache(obj);
    touchL.push(touchRate(ctx));
    const t = await cpuOver(w.daemon.pid!, () => timeAsync('cat', [local]));
    tierL.push(t.value);
    cpuL.push(t.cpu);
  }
  sh('cmp', [local, obj]); // a fast read of wrong bytes would be no result
  // Context for the figure: a recall syncs each file once, after answering the read that
  // completed it; this is the rate of durable 4 MiB writes on the same filesystem.
  const probe = join(dir, 'dsync-probe.bin');
  const p0 = nowMs();
  sh('dd', ['if=/dev/zero', `of=${probe}`, 'bs=4M', `count=${Math.ceil(size / (4 * 1024 * 1024))}`, 'oflag=dsync', 'status=none']);
  const dsyncMs = nowMs() - p0;
  sh('rm', ['-f', probe]);
  const rawMs = median(rawL);
  const catMs = median(catL);
  const tierMs = median(tierL);
  log(`2 local: cp ${rawL.map(fmtMs)}, cat of the object ${catL.map(fmtMs)}, tier ${tierL.map(fmtMs)}`);
  for (const c of cpuL) log(`2 local tier read: ${cpuText(c)}: ${c.top}`);
  out.push({
    id: '2a',
    name: `cold sequential read (cat) of a released ${fmtBytes(size)} file, local tier`,
    figure: `${fmtRate(size, tierMs)} (${fmtMs(tierMs)})`,
    baseline: `cp of the tier object to the same filesystem, cache dropped: ${fmtRate(size, rawMs)} (${fmtMs(rawMs)})`,
    ratio: rawMs / tierMs,
    dir: '>=',
    limit: 0.8,
    ratioIs: 'tier throughput / cp throughput',
    note: `medians of ${rounds} rounds (cp, cat of the object, then the file released afresh); cat of the tier object alone (read only): ${fmtRate(size, catMs)} (${fmtMs(catMs)}), ratio ${(catMs / tierMs).toFixed(2)}; for scale: durable 4 MiB writes (dd oflag=dsync) on this filesystem run at ${fmtRate(size, dsyncMs)}; ${floorText}; during the tier reads: ${cpuL.map(cpuText).join('; ')}; fresh memory before each step (bench/memtouch.c): ${touchText(touchL)}`,
  });

  const key = s3KeyOf(w, s3);
  const rawS: number[] = [];
  const tierS: number[] = [];
  const cpuS: CpuUse[] = [];
  const touchS: number[] = [];
  const dlS: number[] = [];
  // The Ceph daemons' CPU (radosgw + ceph-osd, on the same 2 vCPUs) during each step, and
  // the machine's, per round: both steps of a round share its minute (the host swings).
  const ceph = cephPids(process.env.TIER_TEST_RGW_DIR);
  const perRound: string[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r > 0) await settled([s3]).then(() => release(w, [s3], 'rgw'));
    sh('sync', []);
    touchS.push(touchRate(ctx));
    const rawC = await cpuOver(w.daemon.pid!, () => rawGet(w, key), ceph);
    const raw = rawC.value;
    if (raw.bytes !== size) throw new Error(`raw GET of ${key}: ${raw.bytes} bytes, expected ${size}`);
    rawS.push(raw.ms);
    sh('sync', []);
    touchS.push(touchRate(ctx));
    const t = await cpuOver(w.daemon.pid!, () => timeAsync('cat', [s3]), ceph);
    tierS.push(t.value);
    cpuS.push(t.cpu);
    perRound.push(
      `${(raw.ms / t.value).toFixed(2)} (GET ${fmtMs(raw.ms)}${ceph.length ? `, Ceph ${fmtMs(rawC.cpu.othersMs)}` : ''}, machine ${fmtMs(rawC.cpu.machineMs)}; ` +
        `tier ${fmtMs(t.value)}: daemon ${fmtMs(t.cpu.treeMs)}${ceph.length ? `, Ceph ${fmtMs(t.cpu.othersMs)}` : ''}, machine ${fmtMs(t.cpu.machineMs)})`,
    );
    // After the cat: its own unlink frees 512 MiB that the next step would find warm.
    sh('sync', []);
    touchS.push(touchRate(ctx));
    const dl = await getToFile(w, key, join(dir, 'download.bin'));
    if (dl.bytes !== size) throw new Error(`GetObject of ${key} to a file: ${dl.bytes} bytes, expected ${size}`);
    dlS.push(dl.ms);
  }
  const rawMsS = median(rawS);
  const s3Ms = median(tierS);
  const dlMs = median(dlS);
  log(`2 s3: raw GET ${rawS.map(fmtMs)}, tier ${tierS.map(fmtMs)}, GET to a file ${dlS.map(fmtMs)}`);
  for (const c of cpuS) log(`2 s3 tier read: ${cpuText(c)}: ${c.top}`);
  log(`2 s3 rounds, ratio (CPU time in each step, all of the machine's ${availableParallelism()} CPUs): ${perRound.join('; ')}`);
  out.push({
    id: '2b',
    name: `cold sequential read (cat) of a released ${fmtBytes(size)} file, S3 tier (Ceph RGW, loopback)`,
    figure: `${fmtRate(size, s3Ms)} (${fmtMs(s3Ms)})`,
    baseline: `one SDK GetObject of the object: ${fmtRate(size, rawMsS)} (${fmtMs(rawMsS)})`,
    ratio: rawMsS / s3Ms,
    dir: '>=',
    limit: 0.8,
    ratioIs: 'tier throughput / raw GET throughput',
    note: `medians of ${rounds} rounds; the same GetObject written to a file on the released file's filesystem (a download: it fills the page cache as the recall does): ${fmtRate(size, dlMs)} (${fmtMs(dlMs)}), ratio ${(dlMs / s3Ms).toFixed(3)}; ${floorText}; during the tier reads: ${cpuS.map(cpuText).join('; ')} (the RGW's own CPU is not the daemon's); fresh memory before each step (bench/memtouch.c): ${touchText(touchS)}; each round's ratio, with the CPU time of its steps (the machine's ${availableParallelism()} CPUs in all): ${perRound.join('; ')}`,
  });
  return { results: out, recalledS3: s3 };
}
