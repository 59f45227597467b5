// Real fanotify pre-content events on a loop-mounted ext4: a child process reads a
// marked file, this process answers through the event fd.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { closeSync, fstatSync, openSync, writeFileSync, writeSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import {
  FAN_ALLOW,
  FAN_DENY_EIO,
  FAN_PRE_ACCESS,
  FAN_OPEN_PERM,
  addInodeMark,
  createGroup,
  decodeEvents,
  denyErrno,
  removeInodeMark,
  respond,
  type FanEvent,
} from '../../src/kernel/fanotify.js';
import { pollReadable, readNb } from '../../src/kernel/libc.js';
import { punchHole } from '../../src/kernel/punch.js';
import { detectMode } from '../../src/kernel/detect.js';

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'buffer' }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr: stderr.toString() });
    });
  });
}

/** Serves events on `group` with `handle` until stopped. */
function serve(group: number, handle: (ev: FanEvent) => void): () => void {
  const buf = Buffer.alloc(64 * 1024);
  const h = pollReadable(group, () => {
    for (;;) {
      let n: number;
      try {
        n = readNb(group, buf);
      } catch {
        continue;
      }
      if (n <= 0) return;
      for (const ev of decodeEvents(buf, n)) {
        try {
          handle(ev);
        } finally {
          closeSync(ev.fd);
        }
      }
    }
  });
  return () => h.close();
}

describe('fanotify pre-content on ext4', () => {
  let fs: LoopFs;
  before(() => {
    fs = mountLoopFs('ext4');
  });
  after(() => fs.unmount());

  test('a read raises FAN_PRE_ACCESS with a range; bytes written through the event fd are read', async () => {
    const path = join(fs.dir, 'released');
    const data = Buffer.alloc(64 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    writeFileSync(path, data);
    const group = createGroup('pre-content');
    const fd = openSync(path, 'r+');
    const seen: FanEvent[] = [];
    const stop = serve(group, (ev) => {
      seen.push({ ...ev });
      if (ev.range) writeSync(ev.fd, data, ev.range.offset, Math.min(ev.range.count, data.length - ev.range.offset), ev.range.offset);
      respond(group, ev.fd, FAN_ALLOW);
    });
    try {
      addInodeMark(group, fd, FAN_PRE_ACCESS);
      punchHole(fd, 0, data.length, path);
      assert.equal(fstatSync(fd).blocks, 0);
      const r = await run('dd', [`if=${path}`, 'bs=4096', 'skip=3', 'count=2', 'status=none']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout, data.subarray(3 * 4096, 5 * 4096));
      const ranged = seen.filter((e) => e.range);
      assert.ok(ranged.length >= 1);
      assert.ok(ranged.every((e) => (e.mask & FAN_PRE_ACCESS) !== 0 && e.pid > 0));
      assert.equal(ranged[0]!.range!.offset, 3 * 4096);
    } finally {
      stop();
      removeInodeMark(group, fd);
      closeSync(fd);
      closeSync(group);
    }
  });

  test('deny with EIO gives the reader EIO; an open-perm event has no range', async () => {
    const path = join(fs.dir, 'denied');
    writeFileSync(path, Buffer.alloc(8192, 1));
    const group = createGroup('pre-content');
    const fd = openSync(path, 'r');
    const masks: number[] = [];
    const stop = serve(group, (ev) => {
      masks.push(ev.mask);
      if (ev.mask & FAN_OPEN_PERM) {
        assert.equal(ev.range, undefined);
        respond(group, ev.fd, FAN_ALLOW);
      } else respond(group, ev.fd, FAN_DENY_EIO);
    });
    try {
      addInodeMark(group, fd, FAN_PRE_ACCESS | FAN_OPEN_PERM);
      const r = await run('cat', [path]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.ok(masks.some((m) => m & FAN_OPEN_PERM));
      assert.ok(masks.some((m) => m & FAN_PRE_ACCESS));
    } finally {
      stop();
      closeSync(fd);
      closeSync(group);
    }
  });

  test('responses with an errno the kernel refuses are rejected before the write', () => {
    assert.equal(FAN_DENY_EIO, 0x05000002); // FAN_DENY | EIO << 24
    assert.equal(denyErrno('EAGAIN'), 0x0b000002);
    assert.throws(() => denyErrno('ENOENT'), /not accepted/);
    assert.throws(() => respond(-1, 5, (0x02 | (2 << 24)) >>> 0), /refused/);
  });

  test('detectMode: pre-content on ext4, not on tmpfs', () => {
    const r = detectMode(fs.dir);
    assert.equal(r.mode, 'pre-content');
    const shm = mkdtempSync('/dev/shm/tier-probe-');
    try {
      const t = detectMode(shm);
      assert.notEqual(t.mode, 'pre-content');
      assert.match(t.reasons.join('\n'), /ENOTSUP/); // EOPNOTSUPP == ENOTSUP (95) on Linux
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });
});

describe('decodeEvents', () => {
  test('metadata, range record, and a truncated tail', () => {
    const b = Buffer.alloc(48 + 10);
    b.writeUInt32LE(48, 0);
    b.writeUInt8(3, 4);
    b.writeUInt16LE(24, 6);
    b.writeBigUInt64LE(BigInt(FAN_PRE_ACCESS), 8);
    b.writeInt32LE(7, 16);
    b.writeInt32LE(1234, 20);
    b.writeUInt8(6, 24);
    b.writeUInt16LE(24, 26);
    b.writeBigUInt64LE(8192n, 32);
    b.writeBigUInt64LE(4096n, 40);
    const evs = decodeEvents(b, b.length);
    assert.deepEqual(evs, [{ mask: FAN_PRE_ACCESS, fd: 7, pid: 1234, range: { offset: 8192, count: 4096 } }]);
  });
});
