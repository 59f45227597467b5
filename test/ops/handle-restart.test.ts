// Events missed (daemon down, or a change-tracker queue overflow: the same to reconcile)
// must not cost a living file its data. A released file `a` is hard-linked as `b` outside
// the fileset roots, then `mv c a` replaces the name `a` while nobody watches. The start
// reconcile pass does not find the inode in the roots and `a` holds another file: without
// the catalog's file handle it marked the row deleted and gc deleted the object after
// keep_deleted, leaving `b` reading EIO forever. With it, the row moves to `b`, `b` is
// marked and reads byte-exact, and `tier gc` keeps its object, while the object of a file
// really deleted meanwhile is still collected. Real daemon, real loop-mounted ext4.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { Catalog } from '../../src/engine/catalog.js';
import { logWithin, pattern, runCli, sh, startDaemon, within, type DaemonProc } from '../helpers/daemon.js';

const MiB = 1 << 20;
const KEEP_S = 2;
const rec = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

describe('a hard-linked released file renamed over while the daemon was down (ext4)', () => {
  let fs: LoopFs | undefined;
  let d: DaemonProc | undefined;
  after(async () => {
    await d?.stop();
    fs?.unmount();
  });

  test('reconcile moves its row to the living name, which reads byte-exact; tier gc keeps its object and still collects a deleted file', async () => {
    fs = mountLoopFs('ext4', 64);
    const data = join(fs.dir, 'data');
    const outside = join(fs.dir, 'outside'); // same filesystem, not under the fileset root
    const state = join(fs.scratch, 'state');
    const tierDir = join(fs.scratch, 'tier');
    for (const dir of [data, outside, tierDir]) mkdirSync(dir, { recursive: true });
    const a = join(data, 'a.bin');
    const z = join(data, 'z.bin');
    const b = join(outside, 'b.bin');
    const c = join(data, 'c.txt');
    const content = pattern(2 * MiB + 777, 41);
    writeFileSync(a, content);
    writeFileSync(z, pattern(MiB, 42));
    const policy = join(fs.scratch, 'handle.hsmpolicy');
    writeFileSync(
      policy,
      `tier slow { local "${tierDir}" chunk 1MiB readahead 1MiB }\nfileset data { root "${data}" }\n` +
        `policy p on data {\n  keep_deleted ${KEEP_S}s\n  rule all: size > 0B -> release to slow\n}\n`,
    );

    d = startDaemon([policy], state);
    await d.ready;
    const r = await runCli(['apply', policy, '--state-dir', state]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(rec(a)?.state, 'released');
    assert.equal(statSync(a).blocks, 0);
    const key = rec(a)!.copy!.key;
    const zKey = rec(z)!.copy!.key;
    const dev = statSync(a).dev;
    const ino = statSync(a).ino;
    let cat = new Catalog(join(state, 'catalog.db'));
    try {
      assert.ok(cat.get(dev, ino)?.handle, 'the engine stored the file handle with the row');
    } finally {
      cat.close();
    }
    writeFileSync(c, 'replacement');
    assert.equal((await d.stop()).code, 0);
    d = undefined;

    // Nobody watches: these events are lost (as in a queue overflow).
    await sh('ln "$1" "$2" && mv "$3" "$1" && rm "$4"', a, b, c, z);

    d = startDaemon([policy], state);
    const marked = logWithin(d, 'reconcile marks the living name', 30_000, (l) => l.msg === 'released file found by reconcile: marked' && l.path === b);
    marked.catch(() => {}); // awaited below; a failure before that must not be unhandled
    await d.ready;
    await logWithin(d, 'the start reconcile pass', 30_000, (l) => l.msg === 'reconcile pass done');
    cat = new Catalog(join(state, 'catalog.db'));
    try {
      const row = cat.get(dev, ino);
      assert.equal(row?.path, b, 'the row follows the inode to its remaining name');
      assert.equal(row?.deletedAt, null, 'a living inode is not marked deleted');
      await marked;
      assert.ok(readFileSync(b).equals(content), 'b reads byte-exact (recalled from the tier)');
      assert.equal(readFileSync(a, 'utf8'), 'replacement');

      // Past keep_deleted: the daemon's own gc and then `tier gc` by hand.
      await within('the daemon collects the object of the file really deleted', 20_000, () => !existsSync(join(tierDir, zKey)));
      const g = await runCli(['gc', '--config', policy, '--state-dir', state]);
      assert.equal(g.code, 0, g.stdout + g.stderr);
      assert.ok(existsSync(join(tierDir, key)), 'tier gc kept the object of the living inode');
      assert.equal(cat.get(dev, ino)?.path, b);
      assert.equal(cat.get(dev, ino)?.deletedAt, null);
    } finally {
      cat.close();
    }
    assert.ok(readFileSync(b).equals(content), 'b still reads byte-exact');
    assert.equal((await d.stop()).code, 0);
    d = undefined;
  });
});
