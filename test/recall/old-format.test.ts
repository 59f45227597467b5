// Copies released by earlier versions keep recalling right under today's defaults (16 KiB
// chunks and two-level sums for new copies, runs of chunks per GET, read-ahead of what the
// stream has read): the unit of a file is its record's `copy.chunk`, never the current
// tuning, and its sums format is the record's (no `tree`: one flat object, fetched whole).
//   - before issue 11: 4 MiB chunks and flat sums, a partial file's bitmap at that unit;
//   - issue 11's first round: 64 KiB chunks, flat sums, a raw bitmap xattr.
// Every sums byte a recall fetches counts in bytesFetched.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { DEFAULT_TUNING } from '../../src/dsl/ast.js';
import { makeReleased, pattern, residentOf, run, startHarness, stateOf, type Harness } from './harness.js';

const MiB = 1024 * 1024;
const OLD_CHUNK = 4 * MiB;

for (const type of ['ext4', 'xfs'] as const) {
  describe(`a copy of the old format (4 MiB chunks) on ${type}`, () => {
    let h: Harness;
    before(async () => {
      h = await startHarness({ type, tuning: { chunk: DEFAULT_TUNING.chunk, readahead: DEFAULT_TUNING.readahead } });
    });
    after(async () => h.close());

    test('a read fetches its 4 MiB chunk; the bitmap it leaves is read back after a restart; the rest is fetched once, byte-exact', async () => {
      const data = pattern(10 * MiB + 123, 71);
      const SUMS = 3 * 32; // the flat sums object: 32 bytes per chunk
      const path = await makeReleased(h, 'old.bin', data, 0o644, undefined, { chunk: OLD_CHUNK, flat: true });
      const f0 = h.svc.stats().bytesFetched;
      const r = await run('dd', [`if=${path}`, 'bs=4096', 'skip=1300', 'count=1', 'status=none']); // 5.08 MiB: chunk 1
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data.subarray(1300 * 4096, 1301 * 4096)));
      assert.equal(h.svc.stats().bytesFetched - f0, OLD_CHUNK + SUMS, 'one chunk of the record, not of the current tuning, and its flat sums');
      assert.equal((await stateOf(path))?.state, 'partial');
      assert.deepEqual(await residentOf(path), Buffer.from([0x02]), 'bit 1 of the old-unit bitmap');
      // As after a daemon restart: the cached entry is gone, state comes from the xattrs.
      const st = statSync(path, { bigint: true });
      h.svc.forget(`${st.dev}:${st.ino}`);
      const c = await run('cat', [path]);
      assert.equal(c.code, 0, c.stderr);
      assert.equal(createHash('sha256').update(c.stdout).digest('hex'), createHash('sha256').update(data).digest('hex'));
      assert.equal(h.svc.stats().bytesFetched - f0, data.length + 2 * SUMS, 'chunk 1 not fetched again (the sums are: a new entry)');
      assert.equal((await stateOf(path))?.state, 'archived');
    });

    test('a corrupt chunk of an old copy is still EIO, never wrong bytes', async () => {
      const data = pattern(9 * MiB, 72);
      const path = await makeReleased(h, 'old-bad.bin', data, 0o644, undefined, { chunk: OLD_CHUNK, flat: true });
      // Replace the object with one whose chunk 2 differs (same size): its sum no longer matches.
      const bad = Buffer.from(data);
      bad[8 * MiB + 5] = bad[8 * MiB + 5]! ^ 0xff;
      const { Readable } = await import('node:stream');
      await h.tier.put('k/old-bad.bin', Readable.from([bad]), bad.length, { sha256: createHash('sha256').update(bad).digest('hex'), size: bad.length, path, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 });
      const ok = await run('dd', [`if=${path}`, 'bs=4096', 'count=1', 'status=none']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.ok(ok.stdout.equals(data.subarray(0, 4096)));
      const r = await run('dd', [`if=${path}`, 'bs=4096', `skip=${(8 * MiB) / 4096}`, 'count=1', 'status=none']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
    });
  });
}

// Issue 11's first round: 64 KiB chunks, one flat sums object (32 bytes per chunk, its
// SHA-256 in the record, fetched whole), the resident map as a raw bitmap.
const K64 = 64 * 1024;
for (const type of ['ext4', 'xfs'] as const) {
  describe(`a copy of the 64 KiB flat-sums format on ${type}`, () => {
    let h: Harness;
    before(async () => {
      h = await startHarness({ type, tuning: { chunk: DEFAULT_TUNING.chunk, readahead: DEFAULT_TUNING.readahead } });
    });
    after(async () => h.close());

    test('reads fetch its 64 KiB chunks and the flat sums once; a raw bitmap left by that version is read back; the rest is fetched once, byte-exact', async () => {
      const data = pattern(3 * MiB + 5, 73); // 49 chunks of 64 KiB
      const SUMS = 49 * 32;
      const path = await makeReleased(h, 'k64.bin', data, 0o644, undefined, { chunk: K64, flat: true });
      assert.equal((await stateOf(path))?.copy?.tree, undefined, 'a flat record');
      const f0 = h.svc.stats().bytesFetched;
      for (const chunk of [3, 10]) {
        const r = await run('dd', [`if=${path}`, 'bs=4096', `skip=${chunk * 16 + 1}`, 'count=1', 'status=none']);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stdout.equals(data.subarray((chunk * 16 + 1) * 4096, (chunk * 16 + 2) * 4096)));
      }
      assert.equal(h.svc.stats().bytesFetched - f0, 2 * K64 + SUMS, 'two chunks of the record, the flat sums once');
      // The map that version wrote: a raw bitmap of ceil(49 / 8) bytes, bits 3 and 10.
      const raw = Buffer.alloc(7);
      raw[0] = 0x08;
      raw[1] = 0x04;
      const set = await run('setfattr', ['-n', 'trusted.tier.resident', '-v', `0x${raw.toString('hex')}`, path]);
      assert.equal(set.code, 0, set.stderr);
      const st = statSync(path, { bigint: true });
      h.svc.forget(`${st.dev}:${st.ino}`); // as after a restart: state from the xattrs
      const c = await run('cat', [path]);
      assert.equal(c.code, 0, c.stderr);
      assert.equal(createHash('sha256').update(c.stdout).digest('hex'), createHash('sha256').update(data).digest('hex'));
      assert.equal(h.svc.stats().bytesFetched - f0, data.length + 2 * SUMS, 'chunks 3 and 10 not fetched again');
      assert.equal((await stateOf(path))?.state, 'archived');
    });

    test('a corrupt chunk or a corrupt flat sums object of that format: EIO, no wrong bytes', async () => {
      const data = pattern(2 * MiB, 74);
      const bad = await makeReleased(h, 'k64-bad.bin', data, 0o644, undefined, { chunk: K64, flat: true });
      const obj = Buffer.from(data);
      obj[K64 * 7 + 9] = obj[K64 * 7 + 9]! ^ 0xff;
      const { Readable } = await import('node:stream');
      await h.tier.put('k/k64-bad.bin', Readable.from([obj]), obj.length, { sha256: createHash('sha256').update(obj).digest('hex'), size: obj.length, path: bad, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 });
      const ok = await run('dd', [`if=${bad}`, 'bs=4096', 'count=1', 'status=none']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.ok(ok.stdout.equals(data.subarray(0, 4096)));
      const r = await run('dd', [`if=${bad}`, 'bs=4096', `skip=${(7 * K64) / 4096}`, 'count=1', 'status=none']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.equal(r.stdout.length, 0);

      const sumsBad = await makeReleased(h, 'k64-sums.bin', data, 0o644, undefined, { chunk: K64, flat: true });
      const sums = await h.tier.get('k/k64-sums.bin.sums');
      sums[40] = sums[40]! ^ 0xff;
      await h.tier.put('k/k64-sums.bin.sums', Readable.from([sums]), sums.length, { sha256: createHash('sha256').update(sums).digest('hex'), size: sums.length, path: sumsBad, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 });
      const s = await run('dd', [`if=${sumsBad}`, 'bs=4096', 'count=1', 'status=none']);
      assert.notEqual(s.code, 0);
      assert.match(s.stderr, /Input\/output error/);
    });
  });
}
