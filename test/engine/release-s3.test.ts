// Release end to end with the real recall service and a real S3 (Ceph RGW): files of
// awkward sizes and names are released (blocks freed, size/mtime kept) and read back
// byte-exact through src/recall/service.ts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { freshBucket, s3TestDecl } from '../helpers/rgw.js';
import { createTier } from '../../src/tiers/index.js';
import type { Tier } from '../../src/tiers/tier.js';
import { DEFAULT_TUNING, DEFAULT_WHOLE_FILE_FOR } from '../../src/dsl/ast.js';
import { RecallService } from '../../src/recall/service.js';
import { createGroup } from '../../src/kernel/fanotify.js';
import { leaseSafeMarker } from '../../src/engine/marker.js';
import { migrate, type ExecDeps } from '../../src/engine/execute.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { silentLogger } from '../../src/log.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const type of ['ext4', 'xfs'] as const) {
  describe(`release to S3 on ${type}, read back through the recall service`, () => {
    let fs: LoopFs;
    let group = -1;
    let svc: RecallService;
    let tier: Tier;
    let deps: ExecDeps;
    before(async () => {
      fs = mountLoopFs(type);
      // Small chunks and read-ahead, so that reading one byte leaves a file `partial`.
      const tuning = { ...DEFAULT_TUNING, chunk: 1 << 20, readahead: 1 << 20 };
      tier = createTier(s3TestDecl(freshBucket(undefined, 'eng'), { tuning }));
      const tiers = new Map([[tier.name, tier]]);
      group = createGroup('pre-content');
      svc = new RecallService({
        groupFd: group,
        mode: 'pre-content',
        tiers,
        settings: { wholeFileFor: DEFAULT_WHOLE_FILE_FOR },
        inflightPath: join(fs.scratch, 'inflight'),
        log: silentLogger,
      });
      await svc.start();
      // Pre-content mark before the lease, the full mark (open events too) after the punch.
      const marker = leaseSafeMarker(group, 'pre-content', svc);
      deps = { tiers, catalog: null, marker, log: silentLogger };
    });
    after(async () => {
      await svc?.stop();
      if (group >= 0) closeSync(group);
      await tier?.close();
      fs?.unmount();
    });

    test('0 B .. several MiB, odd names: st_blocks freed, mtime kept, byte-exact read back', async () => {
      const xattrBlocks = 0; // record inside the inode (ext4 -I 512, xfs)
      const files: [string, number][] = [
        ['empty', 0],
        ['one byte', 1],
        ['page-1 4095', 4095],
        ['page 4096', 4096],
        ['page+1\n4097', 4097],
        ['ünïcødé 日本語.bin', 7 * 1024 * 1024 + 3],
      ];
      const data = new Map<string, Buffer>();
      for (const [name, n] of files) {
        const p = join(fs.dir, name);
        const b = Buffer.alloc(n);
        for (let i = 0; i < n; i++) b[i] = (i * 31 + n) & 0xff;
        writeFileSync(p, b);
        utimesSync(p, new Date(Date.UTC(2022, 2, 3, 4, 5, 6, 789)), new Date(Date.UTC(2022, 2, 3, 4, 5, 6, 789)));
        data.set(p, b);
      }
      for (const [p, b] of data) {
        const before = statSync(p, { bigint: true });
        const out = await migrate(p, tier.name, 'release', deps);
        assert.equal(out.status, 'done', `${p}: ${out.message}`);
        const after = statSync(p, { bigint: true });
        assert.ok(Number(after.blocks) <= xattrBlocks, `${p}: ${after.blocks} blocks`);
        assert.equal(after.mtimeNs, before.mtimeNs);
        assert.equal(after.size, before.size);
        const rec = decodeRecord(lgetxattr(p, XATTR_STATE))!;
        assert.equal(rec.state, 'released');
        assert.equal(rec.copy!.sha256, sha(b));
        assert.ok((await tier.get(rec.copy!.key)).equals(b), 'object == original');
      }
      for (const [p, b] of data) assert.ok((await readFile(p)).equals(b), `${p} byte-exact`);
    });

    test('a partially recalled file is released again through a no-notify fd (no deadlock, no upload), and reads back whole', async () => {
      const p = join(fs.dir, 'partial.bin');
      const b = Buffer.alloc(6 * 1024 * 1024 + 5);
      for (let i = 0; i < b.length; i++) b[i] = (i * 7) & 0xff;
      writeFileSync(p, b);
      const first = await migrate(p, tier.name, 'release', deps);
      assert.equal(first.status, 'done', first.message);
      const fh = await open(p, 'r');
      try {
        const one = Buffer.alloc(1);
        await fh.read(one, 0, 1, 3 * 1024 * 1024);
        assert.equal(one[0], b[3 * 1024 * 1024]);
      } finally {
        await fh.close();
      }
      assert.equal(decodeRecord(lgetxattr(p, XATTR_STATE))!.state, 'partial');
      // Punching through an fd opened after the mark would raise an event this process
      // must answer while holding the lease: migrate punches through the event fd of its
      // own open instead (release-partial.ts).
      const key = decodeRecord(lgetxattr(p, XATTR_STATE))!.copy!.key;
      const again = await migrate(p, tier.name, 'release', deps);
      assert.equal(again.status, 'done', again.message);
      assert.equal(again.uploaded, 0);
      assert.equal(again.key, key);
      assert.equal(decodeRecord(lgetxattr(p, XATTR_STATE))!.state, 'released');
      assert.equal(statSync(p).blocks, 0);
      assert.ok((await readFile(p)).equals(b));
    });

    test('an opener during the upload waits, the engine gives the file up at once, the opener reads it normally', async () => {
      const p = join(fs.dir, 'opened.bin');
      const b = Buffer.alloc(300_000, 9);
      writeFileSync(p, b);
      let started!: () => void;
      const go = new Promise<void>((r) => (started = r));
      // Fault injection: a put that only ends when its signal aborts (the lease break).
      const hanging = Object.assign(Object.create(tier) as Tier, {
        name: 'hang',
        async put(_k: string, body: Readable, _n: number, _m: unknown, signal?: AbortSignal) {
          body.resume();
          started();
          await new Promise<void>((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
          throw new Error('unreachable');
        },
      });
      const run = migrate(p, 'hang', 'release', { ...deps, tiers: new Map([['hang', hanging]]) });
      await go;
      const opener = readFile(p);
      const out = await run;
      assert.equal(out.status, 'busy');
      assert.ok((await opener).equals(b), 'the opener is neither refused (EPERM) nor given zeros');
      assert.equal(lgetxattr(p, XATTR_STATE), null);
    });
  });
}
