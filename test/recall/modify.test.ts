// Writes and truncation of released files: never stale data over the user's bytes,
// and the file ends 'dirty' (complete locally, different from the tier copy).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { makeReleased, pattern, run, startHarness, stateOf, type Harness } from './harness.js';

for (const type of ['ext4', 'xfs'] as const) {
  describe(`writes to released files on ${type}`, () => {
    let h: Harness;
    before(async () => {
      h = await startHarness({ type });
    });
    after(async () => h.close());

    test('write into the middle: surrounding bytes recalled first, the write kept', async () => {
      const data = pattern(2 * 1024 * 1024 + 11, 21);
      const path = await makeReleased(h, 'mid.bin', data);
      const patch = Buffer.from('PATCHED-BYTES');
      const at = 700_001;
      const w = await run('dd', [`of=${path}`, 'bs=1', `seek=${at}`, 'conv=notrunc', 'status=none'], { input: patch });
      assert.equal(w.code, 0, w.stderr);
      const want = Buffer.from(data);
      patch.copy(want, at);
      const r = await run('cat', [path]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(want));
      assert.equal((await stateOf(path))?.state, 'dirty');
      assert.ok(readFileSync(path).equals(want)); // unmarked: plain reads from here
    });

    test('truncate down keeps the head; truncate up adds zeros', async () => {
      const data = pattern(1024 * 1024 + 5, 22);
      const down = await makeReleased(h, 'down.bin', data);
      assert.equal((await run('truncate', ['-s', '300001', down])).code, 0);
      const r = await run('cat', [down]);
      assert.ok(r.stdout.equals(data.subarray(0, 300001)));
      assert.equal((await stateOf(down))?.state, 'dirty');

      const up = await makeReleased(h, 'up.bin', data);
      assert.equal((await run('truncate', ['-s', String(data.length + 5000), up])).code, 0);
      const u = await run('cat', [up]);
      assert.ok(u.stdout.equals(Buffer.concat([data, Buffer.alloc(5000)])));
      assert.equal((await stateOf(up))?.state, 'dirty');
    });

    test('open(O_TRUNC) raises no event: the old content is never written back', async () => {
      const data = pattern(600_000, 23);
      const path = await makeReleased(h, 'otrunc.bin', data);
      const w = await run('sh', ['-c', 'printf abc > "$0"', path]);
      assert.equal(w.code, 0, w.stderr);
      const r = await run('cat', [path]);
      assert.equal(r.stdout.toString(), 'abc');
      assert.equal(statSync(path).size, 3);
      assert.equal((await stateOf(path))?.state, 'dirty');
    });

    test('append to a released file', async () => {
      const data = pattern(500_000, 24);
      const path = await makeReleased(h, 'append.bin', data);
      assert.equal((await run('sh', ['-c', 'printf tail >> "$0"', path])).code, 0);
      const r = await run('cat', [path]);
      assert.ok(r.stdout.equals(Buffer.concat([data, Buffer.from('tail')])));
      assert.equal((await stateOf(path))?.state, 'dirty');
    });
  });
}
