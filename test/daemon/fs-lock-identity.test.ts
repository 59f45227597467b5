// The one-daemon-per-filesystem lock is keyed by the filesystem, not only its device number:
// a stale holder whose filesystem is gone (unmounted, loop device detached) must not refuse
// a new filesystem that the kernel gave the same loop device number; the same filesystem
// stays locked. Real loop devices, mkfs and mounts; no daemon needed for the lock itself.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilesystemBusy, lockFilesystems, type LockOwner } from '../../src/daemon/fs-lock.js';

const owner = (): LockOwner => ({ supervisorPid: process.pid, workerPid: null, stateDir: '/nowhere' });

/** losetup LOOP IMG, false when another test's `mount -o loop` took the freed number first. */
function reattach(loop: string, img: string): boolean {
  try {
    execFileSync('losetup', [loop, img], { stdio: ['ignore', 'ignore', 'pipe'] });
    return true;
  } catch (e) {
    if (/busy/i.test(String((e as { stderr?: Buffer }).stderr ?? ''))) return false;
    throw e;
  }
}

test('a new filesystem on a reused loop device number is not refused by a stale lock', async () => {
  const base = mkdtempSync(join(tmpdir(), 'tier-fslock-'));
  const mnt = join(base, 'mnt');
  mkdirSync(mnt);
  const imgs = ['a.img', 'b.img'].map((n) => join(base, n));
  for (const img of imgs) {
    execFileSync('truncate', ['-s', '64M', img]);
    execFileSync('mkfs.ext4', ['-q', '-F', img]);
  }
  try {
    await reuseLoopNumber(mnt, imgs);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

async function reuseLoopNumber(mnt: string, imgs: string[]): Promise<void> {
  // Between detaching the number and attaching it again, a test running beside this one may
  // take it for its own loop mount: then try again on another number.
  for (let attempt = 1; ; attempt++) {
    const loop = execFileSync('losetup', ['-f', '--show', imgs[0]!], { encoding: 'utf8' }).trim();
    let mounted = false;
    let attached = true;
    const held: Array<{ close(): void }> = [];
    try {
      execFileSync('mount', [loop, mnt]);
      mounted = true;
      const devA = statSync(mnt).dev;
      held.push(await lockFilesystems(new Map([[devA, mnt]]), owner));
      // The same filesystem is still refused while the lock is held.
      await assert.rejects(lockFilesystems(new Map([[devA, mnt]]), owner), FilesystemBusy);

      // Filesystem A goes away (the stale holder keeps its socket), B arrives on the same loop device.
      execFileSync('umount', [mnt]);
      mounted = false;
      execFileSync('losetup', ['-d', loop]);
      attached = false;
      if (!reattach(loop, imgs[1]!)) {
        assert.ok(attempt < 10, `${loop} taken by another test ${attempt} times in a row`);
        continue;
      }
      attached = true;
      execFileSync('mount', [loop, mnt]);
      mounted = true;
      const devB = statSync(mnt).dev;
      assert.equal(devB, devA, 'the test needs the same device number for both filesystems');
      held.push(await lockFilesystems(new Map([[devB, mnt]]), owner));
      await assert.rejects(lockFilesystems(new Map([[devB, mnt]]), owner), FilesystemBusy);
      break;
    } finally {
      for (const l of held) l.close();
      if (mounted) execFileSync('umount', ['-l', mnt]);
      if (attached) execFileSync('losetup', ['-d', loop]);
    }
  }
}
