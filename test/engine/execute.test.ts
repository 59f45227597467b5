import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, openSync, statSync, utimesSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { readFile, open } from 'node:fs/promises';
import { copyFileSync, chmodSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { LocalTier } from '../../src/tiers/local.js';
import type { ObjectMeta, PutResult, Tier } from '../../src/tiers/tier.js';
import { migrate, NO_RECALL_SERVICE, type ExecDeps } from '../../src/engine/execute.js';
import { encodeTree } from '../../src/chunks/sums-tree.js';
import { decodeRecord, sumsInRecord, XATTR_STATE, sumsKey } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { silentLogger } from '../../src/log.js';
import { startTestRecall, type TestRecall } from './test-recall.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const record = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));
const rnd = (n: number, seed: number) => {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
};

/** Fault injection: a put that waits until its signal aborts (a lease break), then rejects. */
class HangingPutTier extends LocalTier {
  started?: () => void;
  override async put(key: string, body: Readable, _size: number, _meta: ObjectMeta, signal?: AbortSignal): Promise<PutResult> {
    body.resume();
    this.started?.();
    await new Promise<void>((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
    throw new Error(`unreachable ${key}`);
  }
}

for (const type of ['ext4', 'xfs'] as const) {
  describe(`archive and release on ${type} with the local tier`, () => {
    let fs: LoopFs;
    let tier: LocalTier;
    let recall: TestRecall;
    let deps: ExecDeps;
    // The record lives inside the inode (xfs; ext4 made with -I 512): no block at all.
    const xattrBlocks = 0n;
    before(() => {
      fs = mountLoopFs(type);
      tier = new LocalTier('nas', join(fs.scratch, 'tier'));
      const tiers = new Map<string, Tier>([['nas', tier]]);
      recall = startTestRecall(tiers);
      deps = { tiers, catalog: null, marker: recall, log: silentLogger };
    });
    after(() => {
      recall?.stop();
      fs?.unmount();
    });

    const sizes = [0, 1, 4095, 4096, 4097, 3 * 1024 * 1024 + 123];
    const names = ['zero', 'one', 'a 4095', 'b\n4096', 'ç-4097-日本', 'big file.bin'];
    test('release frees every block, keeps size and mtime, the tier holds the bytes, reads come back byte-exact', async () => {
      const originals = new Map<string, Buffer>();
      sizes.forEach((n, i) => {
        const p = join(fs.dir, names[i]!);
        const data = rnd(n, i + 1);
        writeFileSync(p, data);
        utimesSync(p, new Date(Date.UTC(2020, 0, 1, 0, 0, 0, 123)), new Date(Date.UTC(2021, 5, 6, 7, 8, 9, 456)));
        originals.set(p, data);
      });
      for (const [p, data] of originals) {
        const before = statSync(p, { bigint: true });
        const out = await migrate(p, 'nas', 'release', deps);
        assert.equal(out.status, 'done', `${p}: ${out.message}`);
        assert.equal(out.uploaded, data.length);
        const after = statSync(p, { bigint: true });
        assert.ok(after.blocks <= xattrBlocks, `${p}: ${after.blocks} blocks left`);
        assert.equal(after.size, before.size);
        assert.equal(after.mtimeNs, before.mtimeNs);
        assert.equal(after.atimeNs, before.atimeNs);
        const rec = record(p)!;
        assert.equal(rec.state, 'released');
        assert.equal(rec.gen, 1);
        assert.equal(rec.copy?.tier, 'nas');
        assert.equal(rec.copy?.size, data.length);
        assert.equal(rec.copy?.sha256, sha(data));
        assert.equal(rec.copy?.mtimeNs, before.mtimeNs.toString());
        assert.ok((await tier.get(rec.copy!.key)).equals(data), 'tier object == original');
        // The chunk sums: one SHA-256 per chunk (the last covers its real length), named by the
        // record; in the `.sums` object, except for a one-chunk copy (its one sum is sha256).
        const want: Buffer[] = [];
        for (let off = 0; off < data.length; off += rec.copy!.chunk) want.push(createHash('sha256').update(data.subarray(off, off + rec.copy!.chunk)).digest());
        if (sumsInRecord(rec.copy!)) {
          // Small: checked whole against sha256, no sums object; the record names its flat sums.
          assert.equal(await tier.stat(sumsKey(rec.copy!.key)), null, `${p}: small, no sums object`);
          if (want.length === 1) assert.equal(Buffer.concat(want).toString('hex'), rec.copy!.sha256);
          assert.equal(rec.copy?.sumsSha, sha(Buffer.concat(want)));
        } else {
          // Two levels: the object is level 1 then the leaves; the record names level 1.
          const tree = encodeTree(Buffer.concat(want));
          assert.equal(rec.copy?.tree, true);
          assert.ok((await tier.get(sumsKey(rec.copy!.key))).equals(tree.obj), `${p}: chunk sums`);
          assert.equal(rec.copy?.sumsSha, tree.sumsSha);
        }
      }
      for (const [p, data] of originals) {
        const back = await readFile(p);
        assert.ok(back.equals(data), `${p} read back byte-exact`);
      }
      assert.ok(recall.fills >= originals.size - 1);
    });

    test('release twice does nothing new; release of an archived file uploads nothing', async () => {
      const p = join(fs.dir, 'twice');
      writeFileSync(p, rnd(10_000, 9));
      const a = await migrate(p, 'nas', 'archive', deps);
      assert.equal(a.status, 'done');
      assert.equal(record(p)?.state, 'archived');
      assert.ok(statSync(p).blocks > 0, 'archive keeps the data');
      const sumsSha = record(p)?.copy?.sumsSha;
      assert.match(sumsSha ?? '', /^[0-9a-f]{64}$/);
      const r = await migrate(p, 'nas', 'release', deps);
      assert.equal(r.status, 'done', r.message);
      assert.equal(r.uploaded, 0);
      assert.equal(r.key, a.key);
      assert.equal(record(p)?.copy?.sumsSha, sumsSha, 'the reused copy keeps its chunk sums');
      assert.ok(statSync(p, { bigint: true }).blocks <= xattrBlocks);
      const again = await migrate(p, 'nas', 'release', deps);
      assert.equal(again.status, 'skipped');
    });

    test('archive reads without touching atime and keeps the blocks', async () => {
      const p = join(fs.dir, 'keep-atime');
      writeFileSync(p, rnd(50_000, 3));
      utimesSync(p, new Date(Date.UTC(2019, 1, 2)), new Date(Date.UTC(2019, 1, 3)));
      const before = statSync(p, { bigint: true });
      const out = await migrate(p, 'nas', 'archive', deps);
      assert.equal(out.status, 'done');
      const after = statSync(p, { bigint: true });
      assert.equal(after.atimeNs, before.atimeNs);
      assert.equal(after.mtimeNs, before.mtimeNs);
      assert.ok(after.blocks >= before.blocks && after.blocks <= before.blocks + xattrBlocks);
      assert.equal((await migrate(p, 'nas', 'archive', deps)).status, 'skipped');
    });

    test('a file modified after archiving is uploaded again before release', async () => {
      const p = join(fs.dir, 'dirty');
      writeFileSync(p, rnd(20_000, 4));
      const a = await migrate(p, 'nas', 'archive', deps);
      appendFileSync(p, 'changed');
      const data = await readFile(p);
      const r = await migrate(p, 'nas', 'release', deps);
      assert.equal(r.status, 'done', r.message);
      assert.equal(r.uploaded, data.length);
      assert.notEqual(r.key, a.key);
      const rec = record(p)!;
      assert.equal(rec.gen, 2);
      assert.equal(rec.copy?.sha256, sha(data));
      assert.ok((await tier.get(r.key!)).equals(data));
      assert.ok((await tier.get(a.key!)).equals(data.subarray(0, 20_000)), 'the old copy is untouched (GC is later)');
    });

    test('a file open elsewhere is skipped as busy and left as it was', async () => {
      const p = join(fs.dir, 'busy');
      writeFileSync(p, rnd(8192, 5));
      const other = openSync(p, 'r');
      try {
        const out = await migrate(p, 'nas', 'release', deps);
        assert.equal(out.status, 'busy');
        assert.equal(record(p), null);
        assert.ok(statSync(p).blocks > 0);
      } finally {
        closeSync(other);
      }
      assert.equal(recall.marks >= 0, true);
    });

    test('a running executable is skipped as busy', async () => {
      const p = join(fs.dir, 'sleeper');
      copyFileSync('/bin/sleep', p);
      chmodSync(p, 0o755);
      const child = spawn(p, ['30'], { stdio: 'ignore' });
      await once(child, 'spawn');
      try {
        const out = await migrate(p, 'nas', 'release', deps);
        assert.equal(out.status, 'busy', out.message);
        assert.equal(record(p), null);
      } finally {
        child.kill();
        await once(child, 'exit');
      }
    });

    test('release without a recall service is refused and changes nothing', async () => {
      const p = join(fs.dir, 'nomarker');
      writeFileSync(p, rnd(8192, 6));
      const out = await migrate(p, 'nas', 'release', { ...deps, marker: null });
      assert.equal(out.status, 'failed');
      assert.match(out.message!, new RegExp(NO_RECALL_SERVICE.replace(/[`]/g, '.')));
      assert.equal(record(p), null);
      assert.ok(statSync(p).blocks > 0);
    });

    test('an opener arriving during the copy breaks the lease: the file is abandoned at once, not punched', async () => {
      const p = join(fs.dir, 'opened-during-copy');
      const data = rnd(100_000, 7);
      writeFileSync(p, data);
      const hanging = new HangingPutTier('hang', join(fs.scratch, 'hang'));
      const started = new Promise<void>((r) => (hanging.started = r));
      const run = migrate(p, 'hang', 'release', { ...deps, tiers: new Map<string, Tier>([['hang', hanging]]) });
      await started;
      const opener = open(p, 'r'); // blocks on the lease until the engine unlocks
      const out = await run;
      const fh = await opener;
      try {
        assert.equal(out.status, 'busy');
        assert.match(out.message!, /lease broken/);
        assert.equal(record(p), null);
        assert.ok(statSync(p).blocks > 0);
        assert.ok((await fh.readFile()).equals(data));
      } finally {
        await fh.close();
      }
      const hangDir = join(fs.scratch, 'hang');
      assert.deepEqual(existsSync(hangDir) ? readdirSync(hangDir) : [], [], 'nothing stored');
      assert.deepEqual(recall.errors, []);
    });
  });
}
