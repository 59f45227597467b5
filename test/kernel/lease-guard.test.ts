// holdLease (src/kernel/lease.ts): a broken write lease is given up inside the SIGIO
// listener, not when the holder's own work settles. The holder here never calls release()
// while the opener waits (standing in for an upload stuck on I/O); the opener must still
// get in at once, where a plain lease would keep it waiting lease-break-time (45 s).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { getLease, holdLease } from '../../src/kernel/lease.js';

/** Opens `path` in another process (O_WRONLY: breaks a write lease); resolves with how long the open took. */
function openElsewhere(path: string): Promise<number> {
  const code = `const t=Date.now();require('node:fs').closeSync(require('node:fs').openSync(process.argv[1],'r+'));console.log(Date.now()-t)`;
  const p = spawn(process.execPath, ['-e', code, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (c) => (out += c));
  return new Promise((res, rej) => p.on('close', (c) => (c === 0 ? res(Number(out.trim())) : rej(new Error(`opener exited ${c}`)))));
}

describe('holdLease', () => {
  let fs: LoopFs;
  before(() => {
    fs = mountLoopFs('ext4', 32);
  });
  after(() => fs?.unmount());

  test('an opener gets in at once although the holder has not finished; the guard says broken', async () => {
    const path = join(fs.dir, 'held.bin');
    writeFileSync(path, 'x'.repeat(10_000));
    const fd = openSync(path, 'r');
    try {
      let breaks = 0;
      const guard = holdLease(fd, path, () => breaks++);
      assert.equal(getLease(fd, path), 'write');
      const waited = await openElsewhere(path); // the holder's work "hangs": release() is not called
      assert.ok(waited < 10_000, `the opener waited ${waited} ms (lease-break-time is 45 s)`);
      assert.equal(breaks, 1);
      assert.equal(guard.broken, true);
      assert.equal(getLease(fd, path), 'unlock');
      guard.release(); // nothing left to unlock: no throw
    } finally {
      closeSync(fd);
    }
  });

  test('unbroken: release() unlocks, and a later opener never calls onBreak', async () => {
    const path = join(fs.dir, 'quiet.bin');
    writeFileSync(path, 'y');
    const fd = openSync(path, 'r');
    try {
      let breaks = 0;
      const guard = holdLease(fd, path, () => breaks++);
      guard.release();
      assert.equal(getLease(fd, path), 'unlock');
      await openElsewhere(path);
      assert.equal(breaks, 0);
      assert.equal(guard.broken, false);
    } finally {
      closeSync(fd);
    }
  });
});
