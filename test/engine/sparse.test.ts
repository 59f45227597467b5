// Sparse files (issue 18): a file claiming 20 GiB (16 TiB where the filesystem allows)
// with a few MiB of data is archived and released with the real recall service on loop
// ext4 (-I 512) and xfs: the tier holds about the data, any range reads back right (against
// the data written before release), holes come back as holes, a read in a hole fetches
// nothing; a partial sparse file is re-released; a dense copy keeps the older format.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { leaseSafeMarker } from '../../src/engine/marker.js';
import { migrate, type ExecDeps } from '../../src/engine/execute.js';
import { scanExtents } from '../../src/engine/extent-scan.js';
import { sumsKey, type StateRecord } from '../../src/record/state-record.js';
import { silentLogger } from '../../src/log.js';
import type { Tier } from '../../src/tiers/tier.js';
import { createTier } from '../../src/tiers/index.js';
import { freshBucket, s3TestDecl } from '../helpers/rgw.js';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { makeReleased, pattern, run, startHarness, stateOf, type Harness } from '../recall/harness.js';

const MiB = 1 << 20;
const GiB = 2 ** 30;
const TiB = 2 ** 40;

/** A sparse file: `size` bytes claimed, `parts` written (offset, bytes). */
interface Model {
  path: string;
  size: number;
  parts: { off: number; data: Buffer }[];
}

function makeSparse(path: string, size: number, at: number[], lens: number[]): Model {
  const fd = openSync(path, 'w');
  const parts = at.map((off, i) => ({ off, data: pattern(lens[i]!, i + 7) }));
  try {
    for (const p of parts) writeSync(fd, p.data, 0, p.data.length, p.off);
  } finally {
    closeSync(fd);
  }
  truncateSync(path, size);
  return { path, size, parts };
}

/** The bytes the file must read back in [off, off+len): zeros but where written. */
function expected(m: Model, off: number, len: number): Buffer {
  const out = Buffer.alloc(Math.max(0, Math.min(len, m.size - off)));
  for (const p of m.parts) {
    const s = Math.max(off, p.off);
    const e = Math.min(off + out.length, p.off + p.data.length);
    if (s < e) p.data.copy(out, s - off, s - p.off, e - p.off);
  }
  return out;
}

/** Reads a range in a child process (the handler runs on this event loop). */
async function readRange(path: string, off: number, len: number): Promise<Buffer> {
  const r = await run('dd', [`if=${path}`, 'bs=64K', `skip=${off}`, `count=${len}`, 'iflag=skip_bytes,count_bytes', 'status=none']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The largest size up to `cap` that ftruncate accepts here (ext4: 16 TiB - 4 KiB with 4 KiB blocks, less with 1 KiB). */
function maxFileSize(probe: string, cap: number): number {
  closeSync(openSync(probe, 'w'));
  let lo = 0;
  let hi = cap;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2 / 4096) * 4096;
    try {
      truncateSync(probe, mid);
      lo = mid;
    } catch {
      hi = mid - 4096;
    }
  }
  truncateSync(probe, 0);
  return lo;
}

const dataBytes = (m: Model) => m.parts.reduce((n, p) => n + p.data.length, 0);

/** Bytes of every object the tier holds for `key` (object + sums), by stat. */
async function tierBytes(tier: Tier, key: string): Promise<{ object: number; sums: number }> {
  const o = await tier.stat(key);
  const s = await tier.stat(sumsKey(key));
  return { object: o?.size ?? -1, sums: s?.size ?? -1 };
}

async function extentsOf(path: string): Promise<{ off: number; len: number }[]> {
  // Async open: if the file were still marked, the handler on this loop answers it.
  const fh = await open(path, 'r');
  try {
    return [...scanExtents(fh.fd, Number((await fh.stat()).size)).extents];
  } finally {
    await fh.close();
  }
}

function suite(type: 'ext4' | 'xfs', tierKind: 'local' | 's3') {
  describe(`sparse files on ${type}, ${tierKind} tier`, () => {
    let h: Harness;
    let deps: ExecDeps;
    before(async () => {
      h = await startHarness({
        type,
        sizeMiB: type === 'xfs' ? 320 : 256,
        tuning: { chunk: 4 * MiB, readahead: 4 * MiB, timeoutMs: 20_000 },
        ...(tierKind === 's3' ? { makeTier: (_s: string, tuning) => createTier(s3TestDecl(freshBucket(undefined, 'sparse'), { tuning })) } : {}),
      });
      deps = { tiers: new Map([[h.tier.name, h.tier]]), catalog: null, marker: leaseSafeMarker(h.group, 'pre-content', h.svc), log: silentLogger };
    });
    after(async () => {
      await h?.close();
    });

    test('20 GiB with 3 MiB of data: the tier holds the data, reads are right, holes stay holes', async () => {
      const t0 = Date.now();
      const lap = (what: string) => process.env.TIER_TEST_LOG && process.stderr.write(`${what}: ${Date.now() - t0} ms\n`);
      const m = makeSparse(join(h.fs.dir, 'bomb20g'), 20 * GiB, [0, 7 * GiB + 12345, 20 * GiB - 700 * 1024], [MiB, 3 * MiB / 2, 700 * 1024]);
      const before = statSync(m.path);
      const layout = await extentsOf(m.path);
      const out = await migrate(m.path, h.tier.name, 'release', deps);
      assert.equal(out.status, 'done', out.message);
      lap('released');
      const rec = (await stateOf(m.path)) as StateRecord;
      assert.equal(rec.state, 'released');
      assert.ok(rec.copy?.sparse, 'a sparse copy');
      const stored = await tierBytes(h.tier, rec.copy.key);
      const data = dataBytes(m);
      // Whole blocks around each written range: at most 2 extra blocks per part.
      assert.ok(stored.object >= data && stored.object <= data + 3 * 2 * 4096, `object ${stored.object} for ${data} bytes of data`);
      assert.equal(out.uploaded, stored.object);
      assert.ok(stored.sums < 4096, `sums+map object ${stored.sums}`);
      assert.ok(statSync(m.path).blocks <= 8, `released: blocks ${statSync(m.path).blocks}`);

      // A read deep in a hole: zeros, and nothing fetched but the map.
      const fetched0 = h.svc.stats().bytesFetched;
      assert.deepEqual(await readRange(m.path, 13 * GiB + 5, 100_000), Buffer.alloc(100_000));
      assert.equal(h.svc.stats().bytesFetched - fetched0, stored.sums, 'a read in a hole fetches no data: only the map (its sums object, counted)');
      // Ranges across data and holes, unaligned.
      for (const [off, len] of [
        [0, 4096],
        [MiB - 100, 300],
        [7 * GiB, 2 * MiB],
        [7 * GiB + 12345 + 3 * MiB / 2 - 10, 5000],
        [20 * GiB - 800 * 1024, 800 * 1024],
        [20 * GiB - 10, 100],
      ] as const) {
        assert.deepEqual(await readRange(m.path, off, len), expected(m, off, len), `range ${off}+${len}`);
      }
      assert.ok(h.svc.stats().bytesFetched - fetched0 <= data + 6 * 4096, `fetched ${h.svc.stats().bytesFetched - fetched0}`);

      lap('ranges read');
      // Whole-file recall (cp is a whole-file opener): holes come back as holes.
      const copy = join(h.fs.scratch, 'bomb20g.copy');
      const r = await run('cp', ['--sparse=always', m.path, copy]);
      assert.equal(r.code, 0, r.stderr);
      lap('cp');
      assert.equal((await stateOf(m.path))?.state, 'archived');
      assert.deepEqual(await extentsOf(m.path), layout, 'same data map as before release');
      // About what it held before (xfs may have had speculative preallocation then).
      const after = statSync(m.path);
      assert.ok(after.blocks * 512 >= data && after.blocks * 512 <= data + 3 * 64 * 1024, `blocks ${before.blocks} before, ${after.blocks} after, data ${data}`);
      for (const p of m.parts) assert.deepEqual(await readRange(copy, p.off, p.data.length), p.data);
      assert.equal(statSync(copy).size, m.size);
    });

    test('a file with holes in the middle of a chunk is re-released partial, only data written back', async () => {
      // 40 MiB, data every 5 MiB (64 KiB each, unaligned inside 4 MiB chunks).
      const at = [0, 5, 10, 15, 20, 25, 30, 35].map((i) => i * 5 * MiB + 4096 * 3);
      const m = makeSparse(join(h.fs.dir, 'holes40m'), 40 * MiB, at, at.map(() => 64 * 1024));
      assert.equal((await migrate(m.path, h.tier.name, 'release', deps)).status, 'done');
      // One data chunk resident: the file turns partial.
      assert.deepEqual(await readRange(m.path, 10 * MiB, 200_000), expected(m, 10 * MiB, 200_000));
      assert.equal((await stateOf(m.path))?.state, 'partial');
      const again = await migrate(m.path, h.tier.name, 'release', deps);
      assert.equal(again.status, 'done', again.message);
      assert.equal(again.uploaded, 0);
      assert.equal((await stateOf(m.path))?.state, 'released');
      for (let off = 0; off < m.size; off += 3 * MiB + 777) assert.deepEqual(await readRange(m.path, off, 70_000), expected(m, off, 70_000), `at ${off}`);
    });

    test('a partial sparse file written in place, mtime put back: completed as dirty (its data only), not refused for space', async () => {
      // 20 GiB claimed on a 256 MiB filesystem: completing it whole would need 20 GiB.
      const m = makeSparse(join(h.fs.dir, 'stale20g'), 20 * GiB, [MiB, 11 * GiB], [2 * MiB, MiB]);
      assert.equal((await migrate(m.path, h.tier.name, 'release', deps)).status, 'done');
      const rec = (await stateOf(m.path)) as StateRecord;
      assert.deepEqual(await readRange(m.path, MiB, 4096), expected(m, MiB, 4096));
      assert.equal((await stateOf(m.path))?.state, 'partial');
      // Rewrite resident bytes in place with one write (a child: the file is marked; a second
      // write would find mtime moved and the service would finish the file itself), then put
      // mtime back (touch -h: utimensat, no open for the service to see).
      const w = await run('sh', ['-c', `printf 'NEW BYTES' | dd of=${m.path} bs=9 count=1 seek=${MiB + 100} oflag=seek_bytes conv=notrunc status=none`]);
      assert.equal(w.code, 0, w.stderr);
      const ns = BigInt(rec.copy!.mtimeNs);
      const t = await run('touch', ['-h', '-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, m.path]);
      assert.equal(t.code, 0, t.stderr);
      const out = await migrate(m.path, h.tier.name, 'release', deps);
      assert.equal(out.status, 'skipped', out.message);
      assert.match(out.message ?? '', /written in place since its partial recall/);
      assert.equal((await stateOf(m.path))?.state, 'dirty');
      Buffer.from('NEW BYTES').copy(m.parts[0]!.data, 100);
      for (const [off, len] of [[MiB, 2 * MiB], [11 * GiB - 5, MiB + 10], [5 * GiB, 9000]] as const) assert.deepEqual(await readRange(m.path, off, len), expected(m, off, len));
      assert.ok(statSync(m.path).blocks * 512 < 8 * MiB, `completed with its data only: ${statSync(m.path).blocks} blocks`);
    });

    test('a file with no data at all, released by hand: 0 bytes stored, reads zeros, nothing fetched', async () => {
      const m = makeSparse(join(h.fs.dir, 'nothing'), 5 * GiB + 3, [], []);
      const out = await migrate(m.path, h.tier.name, 'release', deps);
      assert.equal(out.status, 'done', out.message);
      assert.equal(out.uploaded, 0);
      const rec = (await stateOf(m.path)) as StateRecord;
      assert.deepEqual(rec.copy?.sparse, { stored: 0, sumsLen: 24 });
      assert.equal((await tierBytes(h.tier, rec.copy!.key)).object, 0);
      const f0 = h.svc.stats().bytesFetched;
      assert.deepEqual(await readRange(m.path, 5 * GiB - 10, 100), Buffer.alloc(13));
      assert.deepEqual(await readRange(m.path, 1234567, 4096), Buffer.alloc(4096));
      assert.equal(h.svc.stats().bytesFetched - f0, 24, 'only the map (its 24-byte sums object, counted)');
    });

    test('copies made by the previous format (dense sums, and no sums at all) still recall', async () => {
      const data = pattern(5 * MiB + 17, 3);
      for (const sums of [true, false]) {
        const p = await makeReleased(h, `old-${sums}`, data, 0o644, undefined, { sums });
        assert.deepEqual(await readRange(p, 4 * MiB - 5, 1 * MiB + 22), data.subarray(4 * MiB - 5));
        assert.deepEqual(await readRange(p, 0, data.length), data);
      }
    });

    test('a dense file keeps the older record format (no map)', async () => {
      const m = makeSparse(join(h.fs.dir, 'dense'), 3 * MiB + 5, [0], [3 * MiB + 5]);
      assert.equal((await migrate(m.path, h.tier.name, 'release', deps)).status, 'done');
      const rec = (await stateOf(m.path)) as StateRecord;
      assert.equal(rec.copy?.sparse, undefined);
      const raw = await run('getfattr', ['--only-values', '-n', 'trusted.tier.state', m.path]);
      assert.equal((JSON.parse(raw.stdout.toString()) as unknown[][])[4]!.length, 8);
      assert.equal((await tierBytes(h.tier, rec.copy!.key)).object, m.size);
      assert.deepEqual(await readRange(m.path, 0, m.size), m.parts[0]!.data);
    });

    if (tierKind === 'local') {
      test('16 TiB, or the largest size the filesystem allows: archived as its data', async () => {
        const size = maxFileSize(join(h.fs.dir, 'probe'), 16 * TiB);
        assert.ok(size >= 2 * TiB, `max size ${size}`);
        const m = makeSparse(join(h.fs.dir, 'bomb16t'), size, [4096, Math.floor((size * 9) / 16 / 4096) * 4096 + 100, size - 8192], [MiB, MiB, 8192]);
        const out = await migrate(m.path, h.tier.name, 'archive', deps);
        assert.equal(out.status, 'done', out.message);
        const rec = (await stateOf(m.path)) as StateRecord;
        const stored = await tierBytes(h.tier, rec.copy!.key);
        assert.ok(stored.object <= dataBytes(m) + 6 * 4096, `object ${stored.object}`);
        assert.ok(stored.sums < 4096, `sums ${stored.sums}`);
        // The local tier's files on disk: nothing near the claimed size.
        const dirBytes = (d: string): number =>
          readdirSync(d, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? dirBytes(join(d, e.name)) : statSync(join(d, e.name)).blocks * 512), 0);
        assert.ok(dirBytes(join(h.fs.scratch, 'tier')) < 64 * MiB);
        // Released: its resident map is too big for an xattr, so the first read recalls it
        // whole; that costs its data, not its claim.
        const t0 = Date.now();
        const out2 = await migrate(m.path, h.tier.name, 'release', deps);
        assert.equal(out2.status, 'done', out2.message);
        assert.equal(out2.uploaded, 0);
        const f0 = h.svc.stats().bytesFetched;
        const p = m.parts[1]!;
        assert.deepEqual(await readRange(m.path, p.off - 50, 5000), expected(m, p.off - 50, 5000));
        assert.ok(h.svc.stats().bytesFetched - f0 <= dataBytes(m) + 6 * 4096);
        if (process.env.TIER_TEST_LOG) process.stderr.write(`16 TiB release + first read: ${Date.now() - t0} ms\n`);
      });
    }
  });
}

suite('ext4', 'local');
suite('xfs', 'local');
if (process.env.TIER_TEST_S3_ENDPOINT) suite('ext4', 's3');

describe('tier apply: a file with no allocated data is skipped with the reason', () => {
  const CLI = join(import.meta.dirname, '../../src/cli/main.ts');
  const tierCli = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { encoding: 'utf8', cwd: join(import.meta.dirname, '../..') });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  let fs: LoopFs;
  before(() => {
    fs = mountLoopFs('ext4', 32);
  });
  after(() => fs?.unmount());

  test('--dry-run and a real run both show it per file; nothing is uploaded', () => {
    const data = join(fs.dir, 'data');
    mkdirSync(data);
    makeSparse(join(data, 'claim20g'), 20 * GiB, [], []);
    writeFileSync(join(data, 'real.bin'), pattern(100_000));
    const policy = join(fs.scratch, 'p.hsmpolicy');
    writeFileSync(policy, `tier nas { local "${join(fs.scratch, 'tier')}" }\nfileset d { root "${data}" }\npolicy p on d {\n  rule all: size > 0 -> release to nas\n}\n`);
    const state = join(fs.scratch, 'state');
    const dry = tierCli('apply', policy, '--dry-run', '--state-dir', state);
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, /^skipped\s+release\s+nas\s+20 GiB .*rule all .*claim20g\s+\(holds no data: 21474836480 bytes claimed, no block allocated \(st_blocks 0\); releasing it would free nothing\)$/m);
    assert.match(dry.out, /^plan\s+release\s+nas .*real\.bin$/m);
    assert.match(dry.out, /no action: 1 nodata/);
    assert.match(dry.out, /would release: 1 file, 98 KiB/);
    // A real run (no daemon: the release of real.bin fails) skips the claim the same way.
    const real = tierCli('apply', policy, '--json', '--state-dir', state);
    const ev = real.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; path?: string; status?: string; message?: string })
      .find((e) => e.type === 'action' && e.path === 'claim20g');
    assert.equal(ev?.status, 'skipped');
    assert.match(ev?.message ?? '', /holds no data/);
    assert.equal(statSync(join(data, 'claim20g')).size, 20 * GiB);
  });
});
