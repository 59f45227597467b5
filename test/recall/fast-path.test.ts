// The event thread's resident fast path (src/recall/fast-path.ts, event-thread.ts): reads of
// resident ranges are answered by the thread alone, and never once the handler must see
// them (the file was written or truncated, or its grant was revoked before a punch).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'node:fs/promises';
import { XATTR_STATE, encodeRecord } from '../../src/record/state-record.js';
import { fremovexattr, fsetxattr, futimens, nsToTimespec } from '../../src/kernel/libc.js';
import { punchHole } from '../../src/kernel/punch.js';
import { GrantTable, keyOfId } from '../../src/recall/fast-path.js';
import { initialReadahead } from '../../src/recall/readahead.js';
import { MTIME_NS, makeReleased, pattern, run, startHarness, stateOf, type Harness } from './harness.js';

const KiB = 1024;

describe('GrantTable (pure)', () => {
  const K = keyOfId('1:2');
  const T5 = { sec: 0, nsec: 5 };
  const T6 = { sec: 0, nsec: 6 };
  const g = () => ({ id: '1:2', size: 1024 * KiB, mtimeNs: 5n, chunk: 256 * KiB, readahead: 512 * KiB, topUp: 2 * 1024 * KiB, bits: Uint8Array.from([0b0001]), ra: initialReadahead() });

  test('answers only a granted inode, unchanged, on resident chunks', () => {
    const t = new GrantTable();
    assert.equal(t.decide(K, 1024 * KiB, T5, { offset: 0, count: 4096 }).allow, false, 'not granted');
    t.apply({ t: 'grant', g: g() });
    assert.equal(t.decide(K, 1024 * KiB, T5, { offset: 8192, count: 4096 }).allow, true);
    assert.equal(t.decide(K, 1024 * KiB, T6, { offset: 8192, count: 4096 }).allow, false, 'mtime moved');
    assert.equal(t.decide(K, 1000, T5, { offset: 8192, count: 4096 }).allow, false, 'size moved');
    assert.equal(t.decide(K, 1024 * KiB, T5, { offset: 256 * KiB, count: 4096 }).allow, false, 'chunk 1 missing');
    assert.equal(t.decide(K, 1024 * KiB, T5, { offset: 252 * KiB, count: 8192 }).allow, false, 'straddles into chunk 1');
    assert.equal(t.decide(K, 1024 * KiB, T5, { offset: 0, count: 0 }).allow, false, 'to end of file');
    t.apply({ t: 'bits', id: '1:2', bits: Uint8Array.from([0b0011]) });
    assert.equal(t.decide(K, 1024 * KiB, T5, { offset: 256 * KiB, count: 4096 }).allow, true);
    t.apply({ t: 'revoke', id: '1:2' });
    assert.equal(t.decide(K, 1024 * KiB, T5, { offset: 8192, count: 4096 }).allow, false, 'revoked');
  });

  test('a stream on resident chunks is answered here and asks its read-ahead once; a read on missing chunks goes to the handler', () => {
    const t = new GrantTable();
    // Chunks 0 and 1 resident (of four 256 KiB ones), window up to 512 KiB.
    t.apply({ t: 'grant', g: { ...g(), bits: Uint8Array.from([0b0011]) } });
    const asks: number[] = [];
    let last;
    for (let off = 0; off < 512 * KiB; off += 64 * KiB) {
      last = t.decide(K, 1024 * KiB, T5, { offset: off, count: 64 * KiB });
      assert.equal(last.allow, true, `read at ${off / KiB} KiB is on resident chunks`);
      if (last.fed) asks.push(off);
    }
    // The window reaches chunk 2, then chunk 3: each is asked for once (8 reads, 2 asks).
    assert.deepEqual(asks, [320 * KiB, 448 * KiB], `read-ahead asked at ${asks.map((o) => o / KiB).join(', ')} KiB`);
    for (let k = 0; k < 3; k++) assert.equal(t.decide(K, 1024 * KiB, T5, { offset: 448 * KiB, count: 64 * KiB }).fed, undefined, 'asked already: not again while missing');
    last = t.decide(K, 1024 * KiB, T5, { offset: 512 * KiB, count: 64 * KiB });
    assert.equal(last.allow, false, 'chunk 2 missing: the handler decides');
    assert.ok(last.fed, 'with the stream state the thread fed');
  });
});

for (const type of ['ext4', 'xfs'] as const) {
  describe(`event thread on ${type}`, () => {
    let h: Harness;
    before(async () => {
      // No read-ahead: every read after the first of a chunk is on resident pages.
      h = await startHarness({ type, tuning: { readahead: 0 } });
    });
    after(async () => h.close());

    const data = pattern(1024 * KiB + 777, 21);

    test('reads of a resident chunk are answered by the thread, byte-exact', async () => {
      const path = await makeReleased(h, 'fast.bin', data);
      const first = await run('dd', [`if=${path}`, 'bs=4096', 'count=1', 'status=none']);
      assert.ok(first.stdout.equals(data.subarray(0, 4096)));
      const f0 = h.svc.stats().fastAnswered;
      const r = await run('dd', [`if=${path}`, 'bs=4096', 'count=60', 'status=none']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data.subarray(0, 60 * 4096)));
      assert.ok(h.svc.stats().fastAnswered - f0 >= 59, `answered by the thread: ${h.svc.stats().fastAnswered - f0} of 60`);
      assert.equal((await stateOf(path))?.state, 'partial');
    });

    test('a stream: reads on resident ranges are answered by the thread while its read-ahead is fetched, byte-exact', async () => {
      const big = pattern(16 * 1024 * KiB, 5);
      const h2 = await startHarness({ type, tuning: { readahead: 4 * 1024 * KiB } });
      try {
        const path = await makeReleased(h2, 'stream.bin', big);
        const s0 = h2.svc.stats();
        const r = await run('dd', [`if=${path}`, 'bs=64k', 'status=none']);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stdout.equals(big), 'byte-exact');
        const s1 = h2.svc.stats();
        const events = s1.events - s0.events;
        const here = s1.fastAnswered - s0.fastAnswered;
        // Before, a read whose read-ahead window still had chunks in flight went to the
        // handler (held behind its fills): most reads of a cold stream.
        assert.ok(here >= events * 0.6, `answered by the thread: ${here} of ${events}`);
      } finally {
        await h2.close();
      }
    });

    test('back-to-back reads of resident ranges find the thread polling (adaptive polling)', async () => {
      const path = await makeReleased(h, 'spin.bin', data);
      await run('dd', [`if=${path}`, 'bs=4096', 'count=1', 'status=none']);
      // Timing on a busy machine decides how many: a few runs of 60 back-to-back reads.
      let spun = 0;
      for (let i = 0; i < 20 && spun === 0; i++) {
        const s0 = h.svc.stats();
        const r = await run('dd', [`if=${path}`, 'of=/dev/null', 'bs=4096', 'count=60', 'status=none']);
        assert.equal(r.code, 0, r.stderr);
        const s1 = h.svc.stats();
        assert.ok(s1.fastAnswered - s0.fastAnswered >= 59, `answered by the thread: ${s1.fastAnswered - s0.fastAnswered} of 60`);
        spun = s1.fastSpun - s0.fastSpun;
      }
      // Without polling every event waits for a wake-up from poll(): none is found this way.
      assert.ok(spun > 0, 'no event found by adaptive polling');
      const again = await run('cat', [path]);
      assert.ok(again.stdout.equals(data), 'byte-exact');
    });

    test('the first open of a freshly released file is answered by the thread, the main thread blocked', async () => {
      const path = await makeReleased(h, 'open.bin', data);
      const f0 = h.svc.stats().fastAnswered;
      // spawnSync blocks this (the main) thread: an open forwarded to it would wait out the timeout.
      const r = spawnSync('sh', ['-c', `: < '${path}'`], { timeout: 5000 });
      assert.equal(r.status, 0, `open not answered without the main thread (${r.signal ?? r.status})`);
      assert.equal(h.svc.stats().fastAnswered - f0, 1);
      // Its reads still go to the handler: byte-exact, then the inode is the handler's.
      assert.ok((await run('cat', [path])).stdout.equals(data));
    });

    test('opens the thread leaves to the handler: whole_file_for openers, and inodes the handler holds', async () => {
      const path = await makeReleased(h, 'held.bin', data);
      await run('dd', [`if=${path}`, 'bs=4096', 'count=1', 'status=none']); // the handler loads it: held
      const r = spawnSync('sh', ['-c', `: < '${path}'`], { timeout: 1000 });
      assert.notEqual(r.status, 0, 'a held inode\'s open was answered without the handler');
      const copy = join(h.fs.dir, 'copy-of-open.bin');
      const p2 = await makeReleased(h, 'whole.bin', data);
      const c = await run('cp', [p2, copy]);
      assert.equal(c.code, 0, c.stderr);
      assert.ok(readFileSync(copy).equals(data), 'cp got the whole file at open');
    });

    test('a write into a resident chunk: the next read goes to the handler, the file ends dirty with the write', async () => {
      const path = await makeReleased(h, 'written.bin', data);
      await run('dd', [`if=${path}`, 'bs=4096', 'count=2', 'status=none']);
      const w = await run('sh', ['-c', `printf 'XYZ' | dd of='${path}' bs=1 seek=5000 conv=notrunc status=none`]);
      assert.equal(w.code, 0, w.stderr);
      const r = await run('cat', [path]);
      const want = Buffer.from(data);
      want.write('XYZ', 5000);
      assert.ok(r.stdout.equals(want));
      assert.equal((await stateOf(path))?.state, 'dirty');
    });

    test('a truncate: the next read sees the new size, nothing past it is filled', async () => {
      const path = await makeReleased(h, 'truncated.bin', data);
      await run('dd', [`if=${path}`, 'bs=4096', 'count=2', 'status=none']);
      assert.equal((await run('truncate', ['-s', '100000', path])).code, 0);
      const r = await run('cat', [path]);
      assert.ok(r.stdout.equals(data.subarray(0, 100000)));
      assert.equal((await stateOf(path))?.state, 'dirty');
    });

    test('released again after a grant (forget, punch): reads are recalled, never zeros', async () => {
      const path = await makeReleased(h, 'again.bin', data);
      await run('dd', [`if=${path}`, 'bs=4096', 'count=2', 'status=none']);
      const f0 = h.svc.stats().fastAnswered;
      await run('dd', [`if=${path}`, 'bs=4096', 'count=2', 'status=none']);
      assert.ok(h.svc.stats().fastAnswered > f0, 'granted: the thread answered');
      const rec = (await stateOf(path))!;
      assert.equal(rec.state, 'partial');
      // As engine/release-partial.ts does: a no-notify fd from our own open's event, forget, punch.
      const st = statSync(path, { bigint: true });
      const id = `${st.dev}:${st.ino}`;
      const cap = h.svc.captureOwnOpen(id)!;
      await (await open(path, 'r')).close(); // async: this event loop answers it
      const nn = cap.fd!;
      try {
        h.svc.forget(id);
        punchHole(nn, 0, Math.ceil(data.length / 65536) * 65536, path);
        fsetxattr(nn, XATTR_STATE, encodeRecord({ ...rec, state: 'released' }), path);
        fremovexattr(nn, 'trusted.tier.resident', path);
        futimens(nn, nsToTimespec(MTIME_NS), nsToTimespec(MTIME_NS), path);
      } finally {
        closeSync(nn);
      }
      const r = await run('dd', [`if=${path}`, 'bs=4096', 'count=2', 'status=none']);
      assert.ok(r.stdout.equals(data.subarray(0, 8192)), 'zeros: the thread answered from a revoked grant');
    });
  });
}
