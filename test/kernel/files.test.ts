// Punch hole, leases, xattrs and futimens on a loop-mounted ext4.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { fgetxattr, fremovexattr, fsetxattr, futimens, nsToTimespec } from '../../src/kernel/libc.js';
import { getLease, onLeaseBreak, setLease } from '../../src/kernel/lease.js';
import { punchHole } from '../../src/kernel/punch.js';

describe('file syscalls on ext4', () => {
  let fs: LoopFs;
  before(() => {
    fs = mountLoopFs('ext4');
  });
  after(() => fs.unmount());

  test('punchHole frees every block and keeps the size', () => {
    const path = join(fs.dir, 'punch');
    writeFileSync(path, Buffer.alloc(1 << 20, 0xab));
    const fd = openSync(path, 'r+');
    try {
      assert.ok(fstatSync(fd).blocks > 0);
      punchHole(fd, 0, 1 << 20, path);
      const st = fstatSync(fd);
      assert.equal(st.blocks, 0);
      assert.equal(st.size, 1 << 20);
      assert.deepEqual(readFileSync(path), Buffer.alloc(1 << 20));
    } finally {
      closeSync(fd);
    }
  });

  test('write lease: EAGAIN while another fd is open, granted when alone', () => {
    const path = join(fs.dir, 'lease');
    writeFileSync(path, 'x');
    const a = openSync(path, 'r');
    const b = openSync(path, 'r');
    try {
      assert.throws(() => setLease(a, 'write', path), (e: NodeJS.ErrnoException) => e.code === 'EAGAIN' && e.syscall === 'fcntl' && e.path === path);
      closeSync(b);
      setLease(a, 'write', path);
      assert.equal(getLease(a), 'write');
      setLease(a, 'unlock');
      assert.equal(getLease(a), 'unlock');
    } finally {
      closeSync(a);
    }
  });

  test('an opener breaks the lease: SIGIO reaches the listener, node survives', async () => {
    const path = join(fs.dir, 'lease-break');
    writeFileSync(path, 'payload');
    const fd = openSync(path, 'r');
    setLease(fd, 'write', path);
    let seen: string | undefined;
    const broke = new Promise<void>((resolve) => {
      const off = onLeaseBreak(() => {
        seen = getLease(fd);
        setLease(fd, 'unlock');
        off();
        resolve();
      });
    });
    const child = spawn('cat', [path]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
    await broke;
    assert.equal(seen, 'read'); // a reader is waiting
    assert.equal(await exited, 0);
    assert.equal(out, 'payload');
    closeSync(fd);
  });

  test('trusted.* xattr round trip; absent reads null', () => {
    const path = join(fs.dir, 'xattr');
    writeFileSync(path, 'x');
    const fd = openSync(path, 'r');
    try {
      assert.equal(fgetxattr(fd, 'trusted.tier.test'), null);
      const big = Buffer.alloc(900, 0x5a); // larger than the first guess buffer (1 KiB blocks here)
      fsetxattr(fd, 'trusted.tier.test', big, path);
      assert.deepEqual(fgetxattr(fd, 'trusted.tier.test'), big);
      fremovexattr(fd, 'trusted.tier.test');
      fremovexattr(fd, 'trusted.tier.test'); // absent: fine
      assert.equal(fgetxattr(fd, 'trusted.tier.test'), null);
    } finally {
      closeSync(fd);
    }
  });

  test('futimens sets mtime and atime to the exact nanosecond', () => {
    const path = join(fs.dir, 'times');
    writeFileSync(path, 'x');
    const fd = openSync(path, 'r+');
    try {
      const mt = 1_700_000_000_123_456_789n;
      const at = 1_600_000_000_987_654_321n;
      futimens(fd, nsToTimespec(at), nsToTimespec(mt), path);
      const st = fstatSync(fd, { bigint: true });
      assert.equal(st.mtimeNs, mt);
      assert.equal(st.atimeNs, at);
    } finally {
      closeSync(fd);
    }
  });
});
