// Every way a program reads a released file, through the real recall service, on
// ext4 and xfs, with the local tier. Readers are real child processes.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allocated, makeReleased, pattern, run, startHarness, stateOf, type Harness } from './harness.js';

const PY_MMAP = `import mmap, sys
f = open(sys.argv[1], 'rb')
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
sys.stdout.buffer.write(m[:])`;

const PY_READV = `import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.lseek(fd, 5000, 0)
a, b = bytearray(1000), bytearray(70000)
n = os.readv(fd, [a, b])
sys.stdout.buffer.write((a + b)[:n])`;

// copy_file_range into a file, sendfile and splice into stdout (a pipe).
const PY_COPY = `import os, sys
src, dst, how = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(src, os.O_RDONLY)
size = os.fstat(fd).st_size
if how == 'cfr':
    out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    off = 0
    while off < size:
        n = os.copy_file_range(fd, out, size - off, off, off)
        if n == 0: break
        off += n
    os.close(out)
elif how == 'sendfile':
    off = 0
    while off < size:
        n = os.sendfile(1, fd, off, size - off)
        if n == 0: break
        off += n
else:
    r, w = os.pipe()
    left = size
    while left > 0:
        n = os.splice(fd, w, min(left, 65536))
        if n == 0: break
        left -= n
        while n > 0:
            n -= os.write(1, os.read(r, n))`;

for (const type of ['ext4', 'xfs'] as const) {
  describe(`read paths on ${type}`, () => {
    let h: Harness;
    before(async () => {
      h = await startHarness({ type });
    });
    after(async () => h.close());

    test('readv at an offset', async () => {
      const data = pattern(300_000, 11);
      const path = await makeReleased(h, 'readv.bin', data);
      const r = await run('python3', ['-c', PY_READV, path]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data.subarray(5000, 76000)));
    });

    test('O_DIRECT reads see the recalled bytes (they are on disk, not only cached)', async () => {
      const data = pattern(1024 * 1024, 12);
      const path = await makeReleased(h, 'direct.bin', data);
      const r = await run('dd', [`if=${path}`, 'iflag=direct', 'bs=4096', 'skip=70', 'count=3', 'status=none']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data.subarray(70 * 4096, 73 * 4096)));
    });

    test('mmap: one event for the whole mapping, every byte right', async () => {
      const data = pattern(900_000, 13);
      const path = await makeReleased(h, 'mmap.bin', data);
      const r = await run('python3', ['-c', PY_MMAP, path]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(data));
    });

    for (const how of ['cfr', 'sendfile', 'splice'] as const) {
      test(`${how === 'cfr' ? 'copy_file_range' : how} from a released file`, async () => {
        const data = pattern(700_000, 14);
        const path = await makeReleased(h, `${how}.bin`, data);
        const dst = join(h.fs.dir, `${how}.out`);
        const r = await run('python3', ['-c', PY_COPY, path, dst, how]);
        assert.equal(r.code, 0, r.stderr);
        const got = how === 'cfr' ? readFileSync(dst) : r.stdout;
        assert.ok(got.equals(data));
      });
    }

    test('exec of a released script and a released binary', async () => {
      const script = await makeReleased(h, 'hello.sh', Buffer.from('#!/bin/sh\necho "hello from $0"\n'), 0o755);
      // Through sh: node's spawn waits for the child's execve, which waits for this
      // process's handler: spawning a released program directly would deadlock.
      const r = await run('sh', ['-c', '"$0"', script]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), `hello from ${script}\n`);
      const bin = await makeReleased(h, 'echo', readFileSync('/usr/bin/echo'), 0o755);
      const b = await run('sh', ['-c', '"$0" "$@"', bin, 'odd', 'args']);
      assert.equal(b.code, 0, b.stderr);
      assert.equal(b.stdout.toString(), 'odd args\n');
      assert.equal((await stateOf(bin))?.state, 'archived');
    });

    test('cp copies the real bytes, not the holes', async () => {
      const data = pattern(2 * 1024 * 1024 + 5, 15);
      const path = await makeReleased(h, 'cp.bin', data);
      const dst = join(h.fs.scratch, `cp-${type}.out`);
      const r = await run('cp', [path, dst]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(readFileSync(dst).equals(data));
      assert.equal((await stateOf(path))?.state, 'archived');
    });

    test('mv to another filesystem keeps the bytes', async () => {
      const data = pattern(1024 * 1024 + 3, 16);
      const path = await makeReleased(h, 'mv.bin', data);
      const dst = join(h.fs.scratch, `mv-${type}.out`);
      const r = await run('mv', [path, dst]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(readFileSync(dst).equals(data));
    });

    test('tar archives the real bytes', async () => {
      const data = pattern(1024 * 1024 + 9, 17);
      await makeReleased(h, 'tar.bin', data);
      const archive = join(h.fs.scratch, `t-${type}.tar`);
      const r = await run('tar', ['-cf', archive, '-C', h.fs.dir, 'tar.bin']);
      // tar is in wholeFileFor: recalled whole at open, before it reads, so no
      // "file changed as we read it" (exit 1) from the recall's ctime change.
      assert.equal(r.code, 0, r.stderr);
      const x = await run('tar', ['-xOf', archive, 'tar.bin']);
      assert.equal(x.code, 0, x.stderr);
      assert.ok(x.stdout.equals(data));
    });

    test('tar reading its own released archive (tvf | head, -t --file, xf) fetches what it reads, not the whole archive', async () => {
      // 40 members of 512 KiB (20 MiB): tar lists by seeking from header to header.
      const src = join(h.fs.scratch, `tar-src-${type}`);
      mkdirSync(src);
      for (let i = 0; i < 40; i++) writeFileSync(join(src, `m${String(i).padStart(2, '0')}`), pattern(512 * 1024, 100 + i));
      const built = join(h.fs.scratch, `built-${type}.tar`);
      assert.equal((await run('tar', ['-cf', built, '-C', src, '.'])).code, 0);
      const data = readFileSync(built);
      const path = await makeReleased(h, 'list.tar', data);
      const f0 = h.svc.stats().bytesFetched;
      const r = await run('sh', ['-c', 'tar tvf "$0" | head -3', path]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString().trim().split('\n').length, 3);
      const listed = h.svc.stats().bytesFetched - f0;
      // Headers only: a few chunks (256 KiB) and read-ahead (1 MiB), far from 20 MiB.
      assert.ok(listed <= 4 * 1024 * 1024, `tar tvf | head fetched ${listed} bytes of ${data.length}`);
      assert.equal((await stateOf(path))?.state, 'partial');
      // Relative operand, long option: the same archive, still ranged.
      const rel = await run('sh', ['-c', 'cd "$(dirname "$0")" && tar -t --file=list.tar | head -1', path]);
      assert.equal(rel.code, 0, rel.stderr);
      assert.ok(h.svc.stats().bytesFetched - f0 < data.length, 'still partial after tar -t --file=REL');
      // Extraction reads it all, in order; every member byte-exact.
      const out = join(h.fs.scratch, `tar-out-${type}`);
      mkdirSync(out);
      const x = await run('tar', ['xf', path, '-C', out]);
      assert.equal(x.code, 0, x.stderr);
      for (let i = 0; i < 40; i++) assert.ok(readFileSync(join(out, `m${String(i).padStart(2, '0')}`)).equals(pattern(512 * 1024, 100 + i)), `member ${i}`);
    });

    test('tar creating an archive of released files gets each member whole: byte-exact, exit 0 (no "file changed as we read it")', async () => {
      const a = pattern(3 * 256 * 1024 + 7, 61);
      const b = pattern(256 * 1024, 62);
      await makeReleased(h, 'mem-a.bin', a);
      await makeReleased(h, 'mem-b.bin', b);
      const archive = join(h.fs.scratch, `c-${type}.tar`);
      const r = await run('sh', ['-c', 'cd "$0" && tar --sparse -cvf "$1" mem-a.bin mem-b.bin', h.fs.dir, archive]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /changed as we read/);
      for (const [n, d] of [['mem-a.bin', a], ['mem-b.bin', b]] as const) {
        const x = await run('tar', ['-xOf', archive, n]);
        assert.ok(x.stdout.equals(d), n);
        assert.equal((await stateOf(join(h.fs.dir, n)))?.state, 'archived', `${n} recalled whole at tar's open`);
      }
    });

    test('concurrent readers of one file share fetches and all get exact bytes', async () => {
      const data = pattern(3 * 1024 * 1024 + 100, 18);
      const path = await makeReleased(h, 'conc.bin', data);
      const readers = [
        run('cat', [path]),
        run('cat', [path]),
        run('dd', [`if=${path}`, 'bs=65536', 'skip=20', 'status=none']),
        run('python3', ['-c', PY_MMAP, path]),
      ];
      const [a, b, c, d] = await Promise.all(readers);
      assert.ok(a!.stdout.equals(data));
      assert.ok(b!.stdout.equals(data));
      assert.ok(c!.stdout.equals(data.subarray(20 * 65536)));
      assert.ok(d!.stdout.equals(data));
      // Shared fetches: the tier was asked for about one copy of the file, not four.
      const fetched = h.records.filter((x) => x.path === path).reduce((s, x) => s + x.bytes, 0);
      assert.ok(fetched <= data.length + h.sumsFetched(), `fetched ${fetched} for ${data.length}`);
      assert.ok(allocated(path) >= data.length - 4096);
    });

    test('a plain copy via the test process after recall needs no service', async () => {
      const data = pattern(100_000, 19);
      const path = await makeReleased(h, 'after.bin', data);
      assert.equal((await run('cat', [path])).code, 0);
      assert.equal((await stateOf(path))?.state, 'archived');
      // Unmarked now: a synchronous open from this process raises no event.
      const copy = join(h.fs.scratch, `after-${type}.out`);
      copyFileSync(path, copy);
      assert.ok(readFileSync(copy).equals(data));
      assert.equal(statSync(path).size, data.length);
    });
  });
}
