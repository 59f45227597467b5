// A 256 MiB released file with the default chunks and 16 MiB read-ahead: one byte costs
// one chunk and a block of its sums; a sequential read gets everything exactly once;
// `head -c 1M` is fetched at most twice what it read, sums included.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DEFAULT_TUNING } from '../../src/dsl/ast.js';
import { allocated, makeReleased, pattern, run, startHarness, stateOf, type Harness } from './harness.js';

const SIZE = 256 * 1024 * 1024;
const CHUNK = DEFAULT_TUNING.chunk;

for (const type of ['ext4', 'xfs'] as const) {
  describe(`256 MiB released file on ${type}`, () => {
    let h: Harness;
    let data: Buffer;
    let path: string;
    before(async () => {
      h = await startHarness({ type, sizeMiB: 400, tuning: { chunk: DEFAULT_TUNING.chunk, readahead: DEFAULT_TUNING.readahead } });
      data = pattern(SIZE, 41);
      path = await makeReleased(h, 'movie.bin', data);
    });
    after(async () => h.close());

    test('head -c 1 fetches one chunk', async () => {
      const before = h.svc.stats().bytesFetched;
      const s0 = h.sumsFetched();
      const r = await run('head', ['-c', '1', path]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout, data.subarray(0, 1));
      const sums = h.sumsFetched() - s0;
      assert.equal(h.svc.stats().bytesFetched - before, CHUNK + sums, 'one chunk and its sums, all counted');
      // Level 1 (32 B per 64 chunks) and the first block of leaves (2 KiB), in one GET.
      assert.equal(sums, (SIZE / CHUNK / 64) * 32 + 64 * 32);
      assert.ok(allocated(path) <= CHUNK + 65536, `allocated ${allocated(path)}`);
      assert.equal((await stateOf(path))?.state, 'partial');
    });

    test('dd at an odd offset deep in the file: exact bytes, one more chunk (a few small reads open no read-ahead)', async () => {
      const before = h.svc.stats().bytesFetched;
      const s0 = h.sumsFetched();
      const r = await run('dd', [`if=${path}`, 'bs=777', 'skip=200001', 'count=5', 'status=none']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data.subarray(777 * 200001, 777 * 200006)));
      // The chunks under the page-rounded range (the event's), whatever the chunk size.
      const first = Math.floor(Math.floor((777 * 200001) / 4096) * 4096 / CHUNK);
      const last = Math.ceil(Math.ceil((777 * 200006) / 4096) * 4096 / CHUNK);
      assert.equal(h.svc.stats().bytesFetched - before - (h.sumsFetched() - s0), (last - first) * CHUNK);
      assert.equal(h.sumsFetched() - s0, 64 * 32, 'one block of leaves');
      assert.ok(allocated(path) <= (1 + last - first) * CHUNK + 65536, `allocated ${allocated(path)}`);
    });

    test('a sequential cat reads every byte; the file ends archived and unmarked', async () => {
      const r = await run('cat', [path]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, SIZE);
      assert.equal(createHash('sha256').update(r.stdout).digest('hex'), createHash('sha256').update(data).digest('hex'));
      // Each chunk fetched once: what head and dd fetched plus the rest.
      assert.equal(h.svc.stats().bytesFetched, SIZE + h.sumsFetched());
      assert.ok(h.sumsFetched() <= (SIZE / CHUNK) * 33, 'each block of sums fetched once');
      assert.equal((await stateOf(path))?.state, 'archived');
    });

    test('head -c 1M of a fresh file fetches at most twice what it read, sums included', async () => {
      // Read-ahead as large as the read would make the data alone exactly 2 MiB: the window
      // leaves room for level 1 and the blocks of leaves its chunks need (readahead.ts).
      const small = pattern(32 * 1024 * 1024, 43);
      const p = await makeReleased(h, 'head.bin', small);
      const before = h.svc.stats().bytesFetched;
      const s0 = h.sumsFetched();
      const r = await run('head', ['-c', '1048576', p]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(small.subarray(0, 1048576)));
      await h.svc.settled(); // the read-ahead it started, counted too
      const fetched = h.svc.stats().bytesFetched - before;
      assert.ok(h.sumsFetched() - s0 > 0, 'sums were fetched');
      assert.ok(fetched <= 2 * 1048576, `fetched ${fetched} bytes (${h.sumsFetched() - s0} of sums) for 1 MiB read`);
      assert.ok(fetched >= 1048576 + 512 * 1024, `read-ahead still runs: fetched ${fetched}`);
    });
  });
}
