// Recall from S3 (a real Ceph RGW on 127.0.0.1) on ext4 and xfs: byte-exact reads by
// the usual programs, ranged GETs of only the touched chunks, EIO while RGW is
// unreachable and recovery after.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_TUNING } from '../../src/dsl/ast.js';
import { S3Tier } from '../../src/tiers/s3.js';
import type { Tier } from '../../src/tiers/tier.js';
import { freshBucket, s3TestDecl, s3TestEnv } from '../helpers/rgw.js';
import { allocated, makeReleased, pattern, run, startHarness, stateOf, type Harness } from './harness.js';

/** Fault injection: serves get() from a tier pointing at a closed port while `down`. */
class UnreachableTierForTest implements Tier {
  down = false;
  readonly name: string;
  readonly kind: Tier['kind'];
  constructor(
    private readonly up: Tier,
    private readonly dead: Tier,
  ) {
    this.name = up.name;
    this.kind = up.kind;
  }
  private t(): Tier {
    return this.down ? this.dead : this.up;
  }
  get(...a: Parameters<Tier['get']>) {
    return this.t().get(...a);
  }
  put(...a: Parameters<Tier['put']>) {
    return this.up.put(...a);
  }
  getStream(...a: Parameters<Tier['getStream']>) {
    return this.t().getStream(...a);
  }
  stat(...a: Parameters<Tier['stat']>) {
    return this.t().stat(...a);
  }
  delete(...a: Parameters<Tier['delete']>) {
    return this.up.delete(...a);
  }
  list(...a: Parameters<Tier['list']>) {
    return this.t().list(...a);
  }
  async close() {
    await Promise.all([this.up.close(), this.dead.close()]);
  }
}

const PY_MMAP = `import mmap, sys
f = open(sys.argv[1], 'rb')
sys.stdout.buffer.write(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:])`;

for (const type of ['ext4', 'xfs'] as const) {
  describe(`recall from S3 (RGW) on ${type}`, () => {
    let h: Harness;
    let sw: UnreachableTierForTest;
    before(async () => {
      const env = s3TestEnv();
      const bucket = freshBucket(env, `recall-${type}`);
      h = await startHarness({
        type,
        sizeMiB: 400,
        tuning: { chunk: 1024 * 1024, readahead: 4 * 1024 * 1024, timeoutMs: 10_000 },
        makeTier: (_scratch, tuning) => {
          const up = new S3Tier(s3TestDecl(bucket, { tuning }, env));
          const dead = new S3Tier(s3TestDecl(bucket, { tuning: { ...DEFAULT_TUNING, timeoutMs: 2000 }, endpoint: 'http://127.0.0.1:9' }, env));
          return (sw = new UnreachableTierForTest(up, dead));
        },
      });
    });
    after(async () => h.close());

    test('cat, dd at odd offsets, mmap: exact bytes', async () => {
      const data = pattern(3 * 1024 * 1024 + 123, 51);
      const a = await makeReleased(h, 'a.bin', data);
      const d = await run('dd', [`if=${a}`, 'bs=999', 'skip=1111', 'count=7', 'status=none']);
      assert.ok(d.stdout.equals(data.subarray(999 * 1111, 999 * 1118)));
      const c = await run('cat', [a]);
      assert.ok(c.stdout.equals(data));
      const m = await makeReleased(h, 'm.bin', data);
      const r = await run('python3', ['-c', PY_MMAP, m]);
      assert.ok(r.stdout.equals(data));
    });

    test('head -c 1 of a 64 MiB file fetches one chunk', async () => {
      const data = pattern(64 * 1024 * 1024, 52);
      const path = await makeReleased(h, 'big.bin', data);
      const before = h.svc.stats().bytesFetched;
      const s0 = h.sumsFetched();
      const r = await run('head', ['-c', '1', path]);
      assert.deepEqual(r.stdout, data.subarray(0, 1));
      assert.ok(h.sumsFetched() - s0 > 0 && h.sumsFetched() - s0 <= 4096, `sums fetched ${h.sumsFetched() - s0}`);
      assert.equal(h.svc.stats().bytesFetched - before, h.tuning.chunk + h.sumsFetched() - s0);
      assert.ok(allocated(path) <= h.tuning.chunk + 65536);
    });

    test('exec of a released script, cp, tar and concurrent readers', async () => {
      const script = await makeReleased(h, 's.sh', Buffer.from('#!/bin/sh\necho s3-script-ok\n'), 0o755);
      assert.equal((await run('sh', ['-c', '"$0"', script])).stdout.toString(), 's3-script-ok\n');
      const data = pattern(5 * 1024 * 1024 + 1, 53);
      const src = await makeReleased(h, 'cp.bin', data);
      const dst = join(h.fs.scratch, 'cp.out');
      assert.equal((await run('cp', [src, dst])).code, 0);
      assert.ok(readFileSync(dst).equals(data));
      const t = await makeReleased(h, 'tar.bin', data);
      const tr = await run('sh', ['-c', 'tar -cf - -C "$(dirname "$0")" "$(basename "$0")" | tar -xOf -', t]);
      assert.ok(tr.stdout.equals(data));
      const conc = await makeReleased(h, 'conc.bin', data);
      const all = await Promise.all([run('cat', [conc]), run('cat', [conc]), run('cat', [conc])]);
      for (const x of all) assert.ok(x.stdout.equals(data));
      assert.equal((await stateOf(conc))?.state, 'archived');
    });

    test('RGW unreachable: EIO, then exact bytes once it is back', async () => {
      const data = pattern(2 * 1024 * 1024, 54);
      const path = await makeReleased(h, 'down.bin', data);
      sw.down = true;
      try {
        const r = await run('cat', [path]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /Input\/output error/);
        assert.equal(r.stdout.length, 0);
      } finally {
        sw.down = false;
      }
      const ok = await run('cat', [path]);
      assert.equal(ok.stderr.toString(), '');
      assert.ok(ok.stdout.equals(data));
    });
  });
}
