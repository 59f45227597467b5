// Start-up marking against a catalog gone stale while the daemon was down: a row whose
// path now names another released file (a hard link made in its place) must be skipped,
// not opened. Opening it raised a permission event on a file marked earlier in the same
// pass, which only the marking thread could answer: the daemon never became ready.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSqlite } from '../../src/record/sqlite.js';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { daemonLayout, pattern, releaseByHand, startDaemon } from '../helpers/daemon.js';

describe('start-up marking with a stale catalog', () => {
  let fs: LoopFs;
  let L: ReturnType<typeof daemonLayout>;

  before(() => {
    fs = mountLoopFs('ext4');
    L = daemonLayout(fs);
  });
  after(() => fs?.unmount());

  test('a row whose path is now a hard link to a file marked earlier is skipped; the daemon gets ready', async () => {
    const a = join(L.data, 'a.bin');
    const b = join(L.data, 'b.bin');
    const content = pattern(2 * 1024 * 1024 + 5, 3);
    writeFileSync(a, content);
    writeFileSync(b, pattern(100_000, 4));
    await releaseByHand(a, 'slow', L.tierDir, L.stateDir);
    await releaseByHand(b, 'slow', L.tierDir, L.stateDir);

    // Marking goes in the catalog's order: make the later row's path an alias of the earlier file.
    const db = openSqlite(join(L.stateDir, 'catalog.db'), { readonly: true });
    const order = (db.prepare("SELECT path FROM files WHERE state IN ('released', 'partial', 'dirty')").all() as { path: string }[]).map((r) => r.path);
    db.close();
    assert.deepEqual([...order].sort(), [a, b].sort());
    const [first, second] = order as [string, string];
    unlinkSync(second);
    linkSync(first, second);
    assert.equal(statSync(second).ino, statSync(first).ino);

    // Start-up marking per file is the inode-mark fallback's (recall/marks.ts): under a filesystem mark nothing is opened.
    const d = startDaemon([L.policy], L.stateDir, [], { env: { TIER_MARKS: 'inode' } });
    try {
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not ready after 30 s (start-up marking hung)\n${d.stderrText()}`)), 30_000);
      });
      try {
        await Promise.race([d.ready, hung]);
      } finally {
        clearTimeout(timer);
      }
      const status = await (await connectDaemon(L.stateDir))!.status();
      assert.equal(status.startup.marked, 1);
      assert.equal(status.startup.skipped, 1, 'the stale row is skipped');
      const want = first === a ? content : pattern(100_000, 4);
      assert.ok(readFileSync(second).equals(want), 'the alias reads the released file, recalled');
      assert.ok(readFileSync(first).equals(want));
    } finally {
      await d.stop();
    }
  });
});
