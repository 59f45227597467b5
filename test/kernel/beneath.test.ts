// kernel/beneath.ts on a real kernel: openat2 refuses a symlink in any component, `..`
// above the root and a mount inside the root; the inode check catches a replaced file; a
// path outside every fileset is refused by name; and an O_PATH open raises no fanotify
// event (FAN_OPEN_PERM | FAN_PRE_ACCESS marked file), which is why the daemon may open
// O_PATH synchronously before it checks anything.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { atBeneath, BeneathError, locate, pinBeneath, pinInFilesets } from '../../src/kernel/beneath.js';
import { addInodeMark, createGroup, decodeEvents, FAN_ALLOW, FAN_OPEN_PERM, FAN_PRE_ACCESS, respond } from '../../src/kernel/fanotify.js';
import { fileHandleOfFd, readNb } from '../../src/kernel/libc.js';

const code = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as BeneathError).code;
  }
  return 'ok';
};

describe('beneath: resolving under a fileset root', () => {
  let fs: LoopFs;
  let other: LoopFs;
  let root: string;
  before(() => {
    fs = mountLoopFs('ext4');
    other = mountLoopFs('ext4', 32);
    root = join(fs.dir, 'root');
    mkdirSync(join(root, 'a/b'), { recursive: true });
    writeFileSync(join(root, 'a/b/f'), 'inside');
    writeFileSync(join(fs.dir, 'outside'), 'outside');
    mkdirSync(join(fs.dir, 'odir'));
    writeFileSync(join(fs.dir, 'odir/f'), 'outside');
    symlinkSync(join(fs.dir, 'odir'), join(root, 'a/link-dir'));
    symlinkSync(join(fs.dir, 'outside'), join(root, 'a/link-file'));
    mkdirSync(join(root, 'mnt'));
    execFileSync('mount', ['--bind', other.dir, join(root, 'mnt')]);
    writeFileSync(join(root, 'mnt/f'), 'other fs');
  });
  after(() => {
    try {
      execFileSync('umount', [join(root, 'mnt')]);
    } catch {
      // not mounted
    }
    other?.unmount();
    fs?.unmount();
  });

  test('a file beneath the root resolves; its inode is checked', () => {
    const st = fstatSync(openSync(join(root, 'a/b/f'), 'r'));
    const pin = pinBeneath(join(root, 'a/b/f'), root, { dev: st.dev, ino: st.ino });
    try {
      assert.equal(readFileSync(pin.proc, 'utf8'), 'inside');
    } finally {
      pin.close();
    }
    assert.equal(code(() => pinBeneath(join(root, 'a/b/f'), root, { dev: st.dev, ino: st.ino + 1 })), 'REPLACED');
    // The catalog's file handle (taken through a normal fd) matches the O_PATH fd's; another's does not.
    const fd = openSync(join(root, 'a/b/f'), 'r');
    const handle = fileHandleOfFd(fd)!;
    closeSync(fd);
    assert.ok(handle.length > 8);
    assert.equal(code(() => pinBeneath(join(root, 'a/b/f'), root, { dev: st.dev, ino: st.ino, handle }).close()), 'ok');
    const wrong = Buffer.from(handle);
    wrong[wrong.length - 1]! ^= 0xff;
    assert.equal(code(() => pinBeneath(join(root, 'a/b/f'), root, { dev: st.dev, ino: st.ino, handle: wrong })), 'REPLACED');
  });

  test('a symlink in any component, `..` out of the root, a mount inside: refused', () => {
    assert.equal(code(() => pinBeneath(join(root, 'a/link-dir/f'), root)), 'ELOOP');
    assert.equal(code(() => pinBeneath(join(root, 'a/link-file'), root)), 'ELOOP');
    assert.equal(code(() => pinBeneath(join(root, 'mnt/f'), root)), 'EXDEV');
    // normalize() folds `..` before locate: the path is then outside the root.
    assert.equal(code(() => pinBeneath(`${root}/a/../../outside`, root)), 'OUTSIDE');
    // Without a fileset: still no symlink in any component.
    assert.equal(code(() => pinBeneath(join(root, 'a/link-dir/f'), null)), 'ELOOP');
    assert.equal(code(() => pinBeneath(join(root, 'a/b/f'), null)), 'ok');
    // A reader's view: the parent resolved with no symlink, the last name lstat'ed.
    assert.equal(code(() => atBeneath(join(root, 'a/link-dir/f'), root, (at) => readFileSync(at))), 'ELOOP');
    assert.equal(atBeneath(join(root, 'a/b/f'), root, (at) => readFileSync(at, 'utf8')), 'inside');
  });

  test('a path outside every fileset is refused, naming the path and the roots', () => {
    assert.throws(() => pinInFilesets(join(fs.dir, 'outside'), [root, '/srv/x']), (e: Error) => {
      assert.match(e.message, /outside'?: outside every fileset \(roots: .*\/root, \/srv\/x\); refused/);
      return true;
    });
    assert.deepEqual(locate(join(root, 'a/b/f'), ['/nope', root, join(root, 'a')]), { root: join(root, 'a'), rel: 'b/f' });
    assert.equal(code(() => locate(`${root}x/f`, [root])), 'OUTSIDE');
  });

  test('a directory swapped for a symlink between resolution and use changes nothing: the pinned inode is used', () => {
    const pin = pinBeneath(join(root, 'a/b/f'), root);
    try {
      renameSync(join(root, 'a/b'), join(root, 'a/b.away'));
      symlinkSync(join(fs.dir, 'odir'), join(root, 'a/b'));
      assert.equal(readFileSync(pin.proc, 'utf8'), 'inside');
    } finally {
      pin.close();
      rmSync(join(root, 'a/b'));
      renameSync(join(root, 'a/b.away'), join(root, 'a/b'));
    }
  });

  test('an O_PATH open raises no fanotify event; a real open does (measured on this kernel)', async () => {
    const p = join(root, 'a/b/f');
    const group = createGroup('pre-content');
    const fd = openSync(p, 'r');
    try {
      addInodeMark(group, fd, FAN_OPEN_PERM | FAN_PRE_ACCESS);
      const buf = Buffer.alloc(8192);
      const pin = pinBeneath(p, root); // synchronous: would hang here if it raised a permission event
      pin.close();
      assert.equal(readNb(group, buf), -1, 'no event from the O_PATH open');
      // A reader in another process: its open raises FAN_OPEN_PERM, answered here.
      const child = spawn('cat', [p], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      let events = 0;
      const t0 = Date.now();
      while (child.exitCode === null && Date.now() - t0 < 5000) {
        const n = readNb(group, buf);
        if (n > 0) {
          for (const ev of decodeEvents(buf, n)) {
            events++;
            respond(group, ev.fd, FAN_ALLOW);
            closeSync(ev.fd);
          }
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
      assert.ok(events >= 1, 'the real open raised events');
      assert.equal(out, 'inside');
    } finally {
      closeSync(fd);
      closeSync(group);
    }
  });
});
