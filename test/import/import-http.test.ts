// A read-only http tier on a real nginx (autoindex, ranges, ETag) started by the test:
// import from its index pages, recall by ranged GETs under If-Match, a replaced file gives
// EIO, a server without ranges gets whole-file reads with a warning.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { startNginx, type Nginx } from '../helpers/nginx.js';
import { pattern, readAt, startDaemon, type DaemonProc } from '../helpers/daemon.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { tierImport } from './helpers.js';

const rec = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

describe('tier import from an http server (nginx autoindex)', () => {
  let fs: LoopFs;
  let web: Nginx;
  let dd: DaemonProc;
  let www: string;
  let policy: string;
  let stateDir: string;
  let dest: string;
  const files = new Map<string, Buffer>([
    ['a file.txt', Buffer.from('served by nginx\n')],
    ['ü/ñ ✓ & <x>.bin', pattern(2 * 1024 * 1024 + 3, 1)],
    ['empty', Buffer.alloc(0)],
    ['deep/x/y.dat', pattern(9000, 2)],
  ]);

  before(async () => {
    fs = mountLoopFs('ext4');
    www = join(fs.scratch, 'www');
    for (const [k, v] of files) {
      mkdirSync(join(www, 'pub', k, '..'), { recursive: true });
      writeFileSync(join(www, 'pub', k), v);
    }
    mkdirSync(join(www, 'norange'), { recursive: true });
    writeFileSync(join(www, 'norange', 'whole.bin'), pattern(3 * 1024 * 1024, 3));
    web = await startNginx(www);
    const data = join(fs.dir, 'data');
    dest = join(data, 'web');
    mkdirSync(dest, { recursive: true });
    mkdirSync(join(data, 'nr'));
    stateDir = join(fs.scratch, 'state');
    policy = join(fs.scratch, 'p.hsmpolicy');
    writeFileSync(
      policy,
      `tier web { http "${web.url}pub/" chunk 1MiB readahead 1MiB }\n` +
        `tier nr { http "${web.url}norange/" chunk 1MiB readahead 1MiB }\n` +
        `fileset data { root "${data}" }\npolicy p on data {\n  rule none: size < 0B -> keep\n}\n`,
    );
    dd = startDaemon([policy], stateDir);
    await dd.ready;
  });
  after(async () => {
    await dd?.stop();
    await web?.stop();
    fs?.unmount();
  });

  test('index pages become released files; read back byte-exact by ranged GETs', async () => {
    const r = await tierImport(['web', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.summary?.counts.created, files.size, r.stdout);
    for (const [k, v] of files) {
      const p = join(dest, k);
      const st = statSync(p);
      assert.equal(st.size, v.length, k);
      assert.equal(st.blocks, 0, k);
      assert.equal(Math.floor(st.mtimeMs / 1000), Math.floor(statSync(join(www, 'pub', k)).mtimeMs / 1000), k);
      assert.match(rec(p)?.copy?.foreign ?? '', /^etag:"/);
    }
    const before = web.bytesSent('/pub/');
    const big = join(dest, 'ü/ñ ✓ & <x>.bin');
    assert.ok((await readAt(big, 10, 100)).equals(files.get('ü/ñ ✓ & <x>.bin')!.subarray(10, 110)));
    const sent = web.bytesSent('/pub/') - before;
    assert.ok(sent <= 2 * 1024 * 1024 + 4096, `one chunk and its read-ahead, not the whole file (${sent} bytes)`);
    for (const [k, v] of files) assert.ok(readFileSync(join(dest, k)).equals(v), k);
    // Re-import: nothing new.
    const again = await tierImport(['web', dest, '--config', policy, '--state-dir', stateDir]);
    assert.equal(again.summary?.counts.unchanged, files.size);
  });

  test('a file replaced on the server after a partial read: EIO with both validators', async () => {
    const k = 'changing.bin';
    // 8 MiB, the second read at 6 MiB: past the first read's chunk and read-ahead (1 MiB each),
    // so that chunk is fetched only after the server's file changed (at 3 MiB and 2 MiB it
    // raced the read-ahead and was sometimes already resident: no EIO to see).
    writeFileSync(join(www, 'pub', k), pattern(8 * 1024 * 1024, 4));
    await tierImport(['web', dest, '--config', policy, '--state-dir', stateDir]);
    const p = join(dest, k);
    assert.ok((await readAt(p, 0, 10)).equals(pattern(8 * 1024 * 1024, 4).subarray(0, 10)));
    const etag1 = rec(p)!.copy!.foreign!.slice(5);
    writeFileSync(join(www, 'pub', k), pattern(8 * 1024 * 1024, 5));
    // nginx's ETag and Last-Modified carry whole seconds: a rewrite of the same size within the
    // second of the first write has the same validators, and nobody can tell the versions
    // apart (the read then got the new bytes). A new second, as any later edit has.
    const later = new Date(Date.now() + 5000);
    utimesSync(join(www, 'pub', k), later, later);
    await assert.rejects(readAt(p, 6 * 1024 * 1024 + 10, 10), /EIO/);
    const line = await dd.waitLog((l) => l.msg === 'recall failed' && l.path === p);
    assert.ok(String(line.err).includes(etag1) && /now etag:"/.test(String(line.err)), String(line.err));
    const r = await tierImport(['web', dest, '--config', policy, '--state-dir', stateDir]);
    assert.deepEqual(r.items.filter((i) => i.kind === 'kept-local').map((i) => i.key), [k]);
  });

  test('a server without range support: whole-file recall, with a warning', async () => {
    const nr = join(fs.dir, 'data', 'nr');
    const r = await tierImport(['nr', nr, '--config', policy, '--state-dir', stateDir]);
    assert.equal(r.summary?.counts.created, 1, r.stdout + r.stderr);
    assert.ok(readFileSync(join(nr, 'whole.bin')).equals(pattern(3 * 1024 * 1024, 3)));
    await dd.waitLog((l) => /ignores Range/.test(String(l.msg)));
    // The whole body came once and served every chunk.
    assert.ok(web.bytesSent('/norange/whole.bin') <= 3 * 1024 * 1024 + 1024);
  });
});
