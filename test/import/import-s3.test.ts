// `tier import` from a real S3 (Ceph RGW) through a real daemon on a loop filesystem:
// objects put by the test with the SDK appear as released files (names byte for byte,
// size and mtime from the listing, no blocks), read back byte-exact through recall; a
// replaced object gives EIO, never mixed bytes; re-import is idempotent.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { freshBucket } from '../helpers/rgw.js';
import { applyActions, pattern, readAt, startDaemon, within, type DaemonProc } from '../daemon/harness.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { decodeRecord, XATTR_STATE } from '../../src/engine/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { del, head, put, s3Policy, sdk, tierImport } from './helpers.js';

const rec = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

/** Bytes the daemon's recall service fetched from tiers so far. */
async function fetched(stateDir: string): Promise<number> {
  const c = (await connectDaemon(stateDir))!;
  return Number((await c.status()).recall.bytesFetched);
}

describe('tier import from S3', () => {
  let fs: LoopFs;
  let dd: DaemonProc;
  let c: S3Client;
  let bucket: string;
  let policy: string;
  let stateDir: string;
  let data: string;
  let dest: string;
  const objs = new Map<string, Buffer>();
  const BIG = 110 * 1024 * 1024 + 12345;

  before(async () => {
    fs = mountLoopFs('ext4', 256);
    c = sdk();
    bucket = freshBucket(undefined, 'imp');
    data = join(fs.dir, 'data');
    dest = join(data, 'imported');
    mkdirSync(dest, { recursive: true });
    stateDir = join(fs.scratch, 'state');
    policy = s3Policy(fs.scratch, data, bucket, 'pub/');
    objs.set('top.txt', Buffer.from('hello from the bucket\n'));
    objs.set('dir a/ü nïcode ✓.bin', pattern(3 * 1024 * 1024 + 17, 1));
    objs.set('empty', Buffer.alloc(0));
    objs.set('deep/x/y/z.dat', pattern(5000, 2));
    objs.set('big.bin', pattern(BIG, 3));
    for (const [k, v] of objs) await put(c, bucket, `pub/${k}`, v);
    await put(c, bucket, 'elsewhere/not-mine', Buffer.from('outside the tier prefix'));
    dd = startDaemon([policy], stateDir);
    await dd.ready;
  });
  after(async () => {
    await dd?.stop();
    c?.destroy();
    fs?.unmount();
  });

  test('refused without a daemon, and for a directory outside the filesets', async () => {
    const none = await tierImport(['rgw', dest, '--config', policy, '--state-dir', join(fs.scratch, 'no-daemon')]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /needs the daemon/);
    const outside = await tierImport(['rgw', fs.scratch, '--config', policy, '--state-dir', stateDir]);
    assert.notEqual(outside.code, 0);
    assert.match(outside.stderr, /not inside a fileset/);
    assert.ok(!existsSync(join(fs.scratch, 'top.txt')));
  });

  test('every object becomes a released file: names, sizes, mtimes, no blocks, a foreign record', async () => {
    const r = await tierImport(['rgw', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.summary?.counts.created, objs.size, r.stdout);
    for (const [k, v] of objs) {
      const p = join(dest, k);
      const st = statSync(p);
      assert.equal(st.size, v.length, k);
      assert.equal(st.blocks, 0, `${k}: no data blocks`);
      assert.equal(st.mode & 0o777, 0o644);
      const h = await head(c, bucket, `pub/${k}`);
      // The listing has milliseconds, HEAD's Last-Modified whole seconds.
      assert.equal(Math.floor(st.mtimeMs / 1000), h.lastModified.getTime() / 1000, `${k}: mtime from the listing`);
      const r0 = rec(p);
      assert.equal(r0?.state, 'released');
      assert.equal(r0?.copy?.key, k);
      assert.equal(r0?.copy?.foreign, `etag:${h.etag}`);
    }
    assert.ok(!existsSync(join(dest, 'elsewhere')));
    // No temporaries left behind.
    assert.deepEqual(execFileSync('find', [dest, '-name', '.tier-import.*'], { encoding: 'utf8' }), '');
  });

  test('read back byte-exact through recall; head of a >100 MiB object fetches only its start', async () => {
    for (const k of ['top.txt', 'dir a/ü nïcode ✓.bin', 'empty', 'deep/x/y/z.dat']) {
      assert.ok(readFileSync(join(dest, k)).equals(objs.get(k)!), k);
    }
    const big = join(dest, 'big.bin');
    const f0 = await fetched(stateDir);
    const out = execFileSync('sh', ['-c', 'head -c 1000 "$1"', 'sh', big]);
    assert.ok(out.equals(objs.get('big.bin')!.subarray(0, 1000)));
    // The chunk under the read and its read-ahead (1 MiB each here), of 110 MiB.
    const sent = (await fetched(stateDir)) - f0;
    assert.ok(sent > 0 && sent <= 2 * 1024 * 1024, `head fetched ${sent} bytes`);
    const st = statSync(big);
    assert.ok(st.blocks * 512 <= 8 * 1024 * 1024, `only the first chunks are local (${st.blocks * 512} bytes)`);
    assert.equal(rec(big)?.state, 'partial');
  });

  test('eviction: a file read whole is released again by punching only (no PUT, the object untouched)', async () => {
    const k = 'dir a/ü nïcode ✓.bin';
    const p = join(dest, k);
    await within(`${k} hashed and archived after its whole read`, 10_000, () => rec(p)?.state === 'archived');
    const h0 = await head(c, bucket, `pub/${k}`);
    const keys = async () => ((await c.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => `${o.Key} ${o.ETag} ${o.LastModified?.getTime()}`).sort();
    const k0 = await keys();
    const ev = join(fs.scratch, 'evict.hsmpolicy');
    writeFileSync(ev, readFileSync(policy, 'utf8').replace('rule none: size < 0B -> keep', 'rule ev: name ~ "ü nïcode ✓.bin" -> release to rgw'));
    const acts = await applyActions(ev, stateDir);
    const a = acts.get(`imported/${k}`);
    assert.equal(a?.status, 'done', JSON.stringify([...acts]));
    assert.equal(a?.uploaded, 0, 'eviction uploads nothing');
    assert.equal(statSync(p).blocks, 0, 'punched');
    assert.equal(rec(p)?.state, 'released');
    assert.equal(rec(p)?.copy?.key, k);
    assert.deepEqual(await keys(), k0, 'no object written, none deleted');
    assert.deepEqual(await head(c, bucket, `pub/${k}`), h0);
    assert.ok(readFileSync(p).equals(objs.get(k)!), 'recalled again from the imported object');
  });

  test('re-import: nothing changes', async () => {
    const r = await tierImport(['rgw', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.summary?.counts.created, 0);
    assert.equal(r.summary?.counts.unchanged, objs.size);
  });

  test('an object replaced after a partial read: EIO naming path, key and both validators, never mixed bytes', async () => {
    const k = 'chg.bin';
    const v1 = pattern(4 * 1024 * 1024, 7);
    const etag1 = await put(c, bucket, `pub/${k}`, v1);
    assert.ok(((await tierImport(['rgw', dest, '--config', policy, '--state-dir', stateDir])).summary?.counts.created ?? 0) >= 1);
    const p = join(dest, k);
    assert.ok((await readAt(p, 0, 100)).equals(v1.subarray(0, 100)));
    const v2 = pattern(4 * 1024 * 1024, 8);
    const etag2 = await put(c, bucket, `pub/${k}`, v2);
    await assert.rejects(readAt(p, 3 * 1024 * 1024, 100), /EIO/);
    const line = await dd.waitLog((l) => l.msg === 'recall failed' && String(l.path) === p);
    const err = String(line.err);
    assert.ok(err.includes(k) && err.includes(etag1) && err.includes(etag2), err);
    // What was read before stays (it is v1's), and is never mixed with v2.
    assert.ok((await readAt(p, 0, 100)).equals(v1.subarray(0, 100)));
  });

  test('re-import after remote changes: refreshes untouched files, keeps recalled ones, reports and deletes vanished', async () => {
    const nv = pattern(2000, 9);
    await put(c, bucket, 'pub/deep/x/y/z.dat', nv); // z.dat was read whole above: archived, kept
    const t2 = pattern(30, 10);
    await put(c, bucket, 'pub/untouched.txt', Buffer.from('v1'));
    await tierImport(['rgw', dest, '--config', policy, '--state-dir', stateDir]);
    await put(c, bucket, 'pub/untouched.txt', t2);
    await put(c, bucket, 'pub/new/one.txt', Buffer.from('new'));
    await del(c, bucket, 'pub/empty');
    await put(c, bucket, 'pub/gone-untouched', Buffer.from('x'));
    const r1 = await tierImport(['rgw', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r1.summary?.counts.created, 2, r1.stdout); // new/one.txt, gone-untouched
    assert.equal(r1.summary?.counts.refreshed, 1, r1.stdout); // untouched.txt
    await del(c, bucket, 'pub/gone-untouched');
    const r = await tierImport(['rgw', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.stderr);
    const kinds = (kind: string) => r.items.filter((i) => i.kind === kind).map((i) => i.key).sort();
    assert.equal(r.summary?.counts.created, 0);
    assert.deepEqual(kinds('kept-local'), ['chg.bin', 'deep/x/y/z.dat'].sort());
    assert.deepEqual(kinds('vanished'), ['empty', 'gone-untouched']);
    assert.ok(readFileSync(join(dest, 'untouched.txt')).equals(t2));
    assert.ok(readFileSync(join(dest, 'deep/x/y/z.dat')).equals(objs.get('deep/x/y/z.dat')!), 'local data never clobbered');
    assert.equal(readFileSync(join(dest, 'new/one.txt'), 'utf8'), 'new');
    const d = await tierImport(['rgw', dest, '--config', policy, '--state-dir', stateDir, '--delete']);
    assert.deepEqual(d.items.filter((i) => i.kind === 'deleted').map((i) => i.key).sort(), ['gone-untouched']);
    // 'empty' was read (it is archived now): --delete keeps it.
    assert.deepEqual(d.items.filter((i) => i.kind === 'vanished').map((i) => i.key), ['empty']);
    assert.ok(!existsSync(join(dest, 'gone-untouched')));
    assert.ok(existsSync(join(dest, 'empty')));
  });

  test('a symlink a user planted is never followed', async () => {
    const victim = join(fs.scratch, 'victim');
    mkdirSync(victim);
    symlinkSync(victim, join(dest, 'trap'));
    await put(c, bucket, 'pub/trap/owned', Buffer.from('x'));
    const r = await tierImport(['rgw', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.code, 1);
    const f = r.items.find((i) => i.key === 'trap/owned');
    assert.equal(f?.kind, 'failed');
    assert.match(f?.detail ?? '', /symlink/);
    assert.ok(!existsSync(join(victim, 'owned')));
    assert.ok(lstatSync(join(dest, 'trap')).isSymbolicLink());
  });
});
