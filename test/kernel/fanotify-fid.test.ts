// FID-reporting fanotify groups: the pure decoder on a handcrafted buffer, then what the
// 6.18 kernel really sends on loop-mounted ext4 and xfs, and the O_PATH facts change
// tracking relies on (no recall event, no lease break, xattr through /proc/self/fd).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import {
  FAN_ALLOW, FAN_CLASS_NOTIF, FAN_CLOEXEC, FAN_DELETE, FAN_MARK_ADD, FAN_MARK_FILESYSTEM, FAN_MODIFY, FAN_NONBLOCK, FAN_ONDIR, FAN_RENAME,
  FAN_REPORT_DFID_NAME_TARGET, addInodeMark, createGroup, decodeEvents, releasedMask, respond,
} from '../../src/kernel/fanotify.js';
import { decodeFidEvents, fidKey, inoFromHandle, type DirEntry, type FidEvent } from '../../src/kernel/fanotify-fid.js';
import { fanotifyInit, fanotifyMark, fgetxattr, fsetxattr, getxattr, nameToHandleAt, openByHandleAt, readNb, statfsFsid } from '../../src/kernel/libc.js';
import { getLease, setLease } from '../../src/kernel/lease.js';

const O_PATH = 0o10000000;

/** One FID info record: hdr, fsid, file_handle, optional NUL-terminated name, padded to 4. */
function fidRecord(type: number, fsid: [number, number], handleType: number, handle: Buffer, name?: string): Buffer {
  const body = Buffer.concat([Buffer.alloc(20), handle, name === undefined ? Buffer.alloc(0) : Buffer.from(name + '\0')]);
  const len = Math.ceil(body.length / 4) * 4;
  const b = Buffer.alloc(len);
  body.copy(b);
  b.writeUInt8(type, 0);
  b.writeUInt16LE(len, 2);
  b.writeUInt32LE(fsid[0], 4);
  b.writeUInt32LE(fsid[1], 8);
  b.writeUInt32LE(handle.length, 12);
  b.writeInt32LE(handleType, 16);
  return b;
}

function event(mask: number, pid: number, records: Buffer[]): Buffer {
  const meta = Buffer.alloc(24);
  const len = 24 + records.reduce((a, r) => a + r.length, 0);
  meta.writeUInt32LE(len, 0);
  meta.writeUInt8(3, 4); // metadata version
  meta.writeUInt16LE(24, 6);
  meta.writeBigUInt64LE(BigInt(mask), 8);
  meta.writeInt32LE(-1, 16); // FAN_NOFD
  meta.writeInt32LE(pid, 20);
  return Buffer.concat([meta, ...records]);
}

const ext4Handle = (ino: number, gen: number) => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(ino, 0);
  b.writeUInt32LE(gen, 4);
  return b;
};

describe('FID event decoder (handcrafted buffer)', () => {
  test('rename, modify and an unknown record decode; a truncated tail event is left out', () => {
    const fsid: [number, number] = [0x844b2956, 0x199f4179];
    const dir = ext4Handle(2, 0);
    const xfsChild = Buffer.alloc(12);
    xfsChild.writeBigUInt64LE(0x1_0000_0083n, 0);
    const buf = Buffer.concat([
      event(FAN_RENAME | FAN_ONDIR, 4242, [fidRecord(10, fsid, 1, dir, 'd'), fidRecord(12, fsid, 1, dir, 'e'), fidRecord(1, fsid, 0x81, xfsChild)]),
      event(FAN_MODIFY, 7, [fidRecord(2, fsid, 1, ext4Handle(12, 0xb1ae20ec), 'a.txt'), fidRecord(99, fsid, 1, dir), fidRecord(1, fsid, 1, ext4Handle(13, 5))]),
    ]);
    const truncated = event(FAN_DELETE, 1, [fidRecord(2, fsid, 1, dir, 'gone')]).subarray(0, 30);
    const evs = decodeFidEvents(Buffer.concat([buf, truncated]), buf.length + truncated.length);
    assert.equal(evs.length, 2);
    const [ren, mod] = evs as [FidEvent, FidEvent];
    assert.equal(ren.mask, FAN_RENAME | FAN_ONDIR);
    assert.equal(ren.pid, 4242);
    assert.equal(ren.from?.name, 'd');
    assert.equal(ren.to?.name, 'e');
    assert.equal(ren.from?.fsid, '844b2956:199f4179');
    assert.equal(inoFromHandle(ren.fid!), 0x1_0000_0083, 'xfs 64-bit inode handle');
    assert.equal(ren.fid!.type, 0x81);
    assert.equal(mod.mask, FAN_MODIFY);
    assert.equal((mod.dir as DirEntry).name, 'a.txt');
    assert.equal(inoFromHandle(mod.dir!), 12);
    assert.equal(inoFromHandle(mod.fid!), 13);
    // The handle is struct file_handle as open_by_handle_at takes it: bytes, type, f_handle.
    assert.equal(mod.fid!.handle.readUInt32LE(0), 8);
    assert.equal(mod.fid!.handle.readInt32LE(4), 1);
    assert.deepEqual(mod.fid!.handle.subarray(8), ext4Handle(13, 5));
    assert.notEqual(fidKey(mod.fid!), fidKey(mod.dir!));
    assert.equal(inoFromHandle({ fsid: 'x', type: 0x4d, handle: Buffer.from('0400000000000000aabbccdd', 'hex') }), null, 'unknown handle type');
  });

  test('a record longer than its event stops that event, not the decoder', () => {
    const bad = event(FAN_MODIFY, 1, [fidRecord(1, [1, 2], 1, ext4Handle(5, 0))]);
    bad.writeUInt16LE(200, 24 + 2); // record claims more than the event holds
    const evs = decodeFidEvents(bad, bad.length);
    assert.equal(evs.length, 1);
    assert.equal(evs[0]!.fid, undefined);
  });
});

for (const type of ['ext4', 'xfs'] as const) {
  describe(`FID events from the kernel (${type})`, () => {
    let fs: LoopFs;
    let group = -1;
    const buf = Buffer.alloc(64 * 1024);
    before(() => {
      fs = mountLoopFs(type);
      group = fanotifyInit(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC | FAN_REPORT_DFID_NAME_TARGET, 0);
      fanotifyMark(group, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_MODIFY | FAN_DELETE | FAN_RENAME | FAN_ONDIR, -100, fs.dir);
    });
    after(() => {
      if (group >= 0) closeSync(group);
      fs.unmount();
    });
    const read = (): FidEvent[] => {
      const n = readNb(group, buf);
      return n <= 0 ? [] : decodeFidEvents(buf, n);
    };

    test('rename and delete name old and new dir+name and the child; the handle opens O_PATH to the same inode', () => {
      const dir = join(fs.dir, 'd');
      mkdirSync(dir);
      const a = join(dir, 'a');
      writeFileSync(a, 'x');
      read(); // nothing subscribed so far but be sure
      const ino = statSync(a).ino;
      renameSync(a, join(fs.dir, 'b'));
      unlinkSync(join(fs.dir, 'b'));
      const evs = read();
      const ren = evs.find((e) => e.mask & FAN_RENAME)!;
      assert.ok(ren, 'a FAN_RENAME event');
      assert.equal(ren.from?.name, 'a');
      assert.equal(ren.to?.name, 'b');
      assert.equal(ren.from?.fsid, statfsFsid(fs.dir), 'fsid is statfs f_fsid');
      assert.equal(inoFromHandle(ren.fid!), ino, `child ino from a ${type} handle (type ${ren.fid!.type})`);
      assert.equal(inoFromHandle(ren.from!), statSync(dir).ino);
      assert.equal(inoFromHandle(ren.to!), statSync(fs.dir).ino);
      const root = openSync(fs.dir, 'r');
      try {
        const fd = openByHandleAt(root, ren.from!.handle, O_PATH);
        assert.equal(fstatSync(fd).ino, statSync(dir).ino);
        closeSync(fd);
        const del = evs.find((e) => e.mask & FAN_DELETE)!;
        assert.equal((del.dir as DirEntry).name, 'b');
        assert.equal(inoFromHandle(del.fid!), ino);
        // The deleted child's handle is stale now.
        assert.throws(() => openByHandleAt(root, del.fid!.handle, O_PATH), (e: NodeJS.ErrnoException) => e.errno === -116);
      } finally {
        closeSync(root);
      }
    });
  });
}

describe('O_PATH opens by handle (what change tracking relies on, ext4)', () => {
  let fs: LoopFs;
  before(() => {
    fs = mountLoopFs('ext4', 32);
  });
  after(() => fs.unmount());

  test('no pre-content event (a cat of the same file raises one); xattr via /proc/self/fd, fgetxattr EBADF; a write lease survives', async () => {
    const file = join(fs.dir, 'marked');
    writeFileSync(file, 'data');
    const w = openSync(file, 'r');
    fsetxattr(w, 'trusted.tier.test', Buffer.from('rec'));
    const pre = createGroup('pre-content');
    addInodeMark(pre, w, releasedMask('pre-content'));
    closeSync(w);
    const root = openSync(fs.dir, 'r');
    const buf = Buffer.alloc(4096);
    try {
      const { handle } = nameToHandleAt(file);
      const fd = openByHandleAt(root, handle, O_PATH);
      assert.equal(fstatSync(fd).size, 4);
      assert.deepEqual(getxattr(`/proc/self/fd/${fd}`, 'trusted.tier.test'), Buffer.from('rec'));
      assert.throws(() => fgetxattr(fd, 'trusted.tier.test'), { code: 'EBADF' });
      closeSync(fd);
      assert.equal(readNb(pre, buf), -1, 'no event from the O_PATH open, fstat or getxattr');
      // Control: an ordinary open by another process raises one.
      const cat = new Promise<number>((r) => execFile('cat', [file], (e) => r(e ? 1 : 0)));
      let evs: ReturnType<typeof decodeEvents> = [];
      for (let i = 0; i < 200 && evs.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
        const n = readNb(pre, buf);
        if (n > 0) evs = decodeEvents(buf, n);
      }
      assert.ok(evs.length > 0, 'cat raised an event');
      for (;;) {
        for (const e of evs) {
          respond(pre, e.fd, FAN_ALLOW);
          closeSync(e.fd);
        }
        if ((await Promise.race([cat.then(() => true), new Promise((r) => setTimeout(() => r(false), 20))])) === true) break;
        const n = readNb(pre, buf);
        evs = n > 0 ? decodeEvents(buf, n) : [];
      }
      assert.equal(await cat, 0);

      const leased = join(fs.dir, 'leased');
      writeFileSync(leased, 'x');
      const lfd = openSync(leased, 'r');
      try {
        setLease(lfd, 'write');
        const p = openByHandleAt(root, nameToHandleAt(leased).handle, O_PATH);
        fstatSync(p);
        getxattr(`/proc/self/fd/${p}`, 'trusted.tier.test');
        closeSync(p);
        assert.equal(getLease(lfd), 'write', 'the lease was not broken');
      } finally {
        setLease(lfd, 'unlock');
        closeSync(lfd);
      }
    } finally {
      closeSync(root);
      closeSync(pre);
    }
  });
});
