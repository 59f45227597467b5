// Reads of released files through the real recall service on ext4 and xfs, with the local tier.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { MTIME_NS, allocated, makeReleased, pattern, residentOf, run, startHarness, stateOf, type Harness } from './harness.js';

for (const type of ['ext4', 'xfs'] as const) {
  describe(`recall on ${type} (local tier)`, () => {
    let h: Harness;
    before(async () => {
      h = await startHarness({ type });
    });
    after(async () => h.close());

    test('cat returns the exact bytes; the file ends archived, unmarked, mtime restored', async () => {
      const data = pattern(1024 * 1024 + 777, 2);
      const path = await makeReleased(h, 'cat.bin', data);
      const r = await run('cat', [path]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data));
      const st = await stateOf(path);
      assert.equal(st?.state, 'archived');
      assert.ok(h.svc.stats().marksRemoved >= 1);
      assert.equal(statSync(path, { bigint: true }).mtimeNs, MTIME_NS);
      assert.ok(allocated(path) >= data.length - 4096);
    });

    test('dd with odd offsets and sizes reads exact bytes and fetches only the touched chunks', async () => {
      const data = pattern(4 * 1024 * 1024, 3);
      const path = await makeReleased(h, 'dd.bin', data);
      const r = await run('dd', [`if=${path}`, 'bs=1000', 'skip=1234', 'count=3', 'status=none']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data.subarray(1234000, 1237000)));
      const st = await stateOf(path);
      assert.equal(st?.state, 'partial');
      // 1,234,000..1,237,000 lies in chunk 4 of 16 (256 KiB chunks); three sequential reads
      // open a read-ahead window of at most two more chunks. Slack: an xattr block.
      assert.ok(allocated(path) <= 3 * h.tuning.chunk + 65536, `allocated ${allocated(path)}`);
      assert.ok(allocated(path) >= h.tuning.chunk);
    });

    test('every fetched byte is counted once, sums included: the recall log (read-ahead rows included) adds up to bytesFetched', async () => {
      const data = pattern(6 * 1024 * 1024 + 99, 5);
      const path = await makeReleased(h, 'count.bin', data);
      const f0 = h.svc.stats().bytesFetched;
      const s0 = h.sumsFetched();
      const r0 = h.records.length;
      // Sequential reads of half the file: read-ahead runs past what was read.
      const r = await run('dd', [`if=${path}`, 'bs=65536', 'count=48', 'status=none']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data.subarray(0, 48 * 65536)));
      await h.svc.settled();
      const fetched = h.svc.stats().bytesFetched - f0;
      const rows = h.records.slice(r0);
      const logged = rows.reduce((n, x) => n + x.bytes, 0);
      assert.ok(rows.some((x) => x.readahead && x.bytes > 0), 'a read-ahead row');
      assert.ok(rows.every((x) => x.path === path), 'rows name the file');
      assert.equal(logged, fetched, 'log rows add up to the bytes fetched');
      assert.ok(fetched > 48 * 65536, `read-ahead fetched past the reads (${fetched})`);
      const sums = h.sumsFetched() - s0;
      assert.ok(sums > 0, 'the sums GETs are counted too (in bytesFetched and in the log rows)');
      assert.ok(allocated(path) >= fetched - sums - 65536, 'what was fetched is on disk');
    });

    test('pread past EOF returns nothing and does not hang', async () => {
      const data = pattern(10000, 4);
      const path = await makeReleased(h, 'eof.bin', data);
      const r = await run('dd', [`if=${path}`, 'bs=4096', 'skip=5', 'count=1', 'status=none']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, 0);
      const tail = await run('dd', [`if=${path}`, 'bs=1', 'skip=9990', 'status=none']);
      assert.ok(tail.stdout.equals(data.subarray(9990)));
    });
  });
}

describe('a resident map too big for an xattr (ext4, 1 KiB blocks)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ type: 'ext4', tuning: { chunk: 4096, readahead: 0 } });
  });
  after(async () => h.close());

  test('a map that fits as runs is stored; one that does not makes the read recall the whole file, never an unrecorded partial file', async () => {
    const data = pattern(40 * 1024 * 1024, 5); // 10240 chunks: a 1280-byte bitmap does not fit a 1 KiB block
    const path = await makeReleased(h, 'many-chunks.bin', data);
    const r = await run('head', ['-c', '10', path]);
    assert.deepEqual(r.stdout, data.subarray(0, 10));
    assert.equal((await stateOf(path))?.state, 'partial', 'one run: a few bytes');
    assert.ok((await residentOf(path))!.length < 8);
    // Every third chunk: about 3400 runs, which no 1 KiB block holds in either form.
    const py = 'import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nfor i in range(1,3413): os.pread(fd,1,i*3*4096)\n';
    const s = await run('python3', ['-c', py, path]);
    assert.equal(s.code, 0, s.stderr);
    assert.equal((await stateOf(path))?.state, 'archived');
    assert.ok((await run('cat', [path])).stdout.equals(data));
  });
});

describe('fallback mode: content group, whole file at open', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ type: 'ext4', mode: 'content' });
  });
  after(async () => h.close());

  test('the open recalls every byte before the reader starts', async () => {
    const data = pattern(1024 * 1024 + 17, 6);
    const path = await makeReleased(h, 'content.bin', data);
    const r = await run('head', ['-c', '1', path]);
    assert.deepEqual(r.stdout, data.subarray(0, 1));
    assert.equal(h.svc.stats().bytesFetched, data.length + h.sumsFetched());
    assert.equal((await stateOf(path))?.state, 'archived');
    assert.ok((await run('cat', [path])).stdout.equals(data));
  });
});
