// Runs of chunks (one GET per run, recall/fill.ts) over a sparse copy (only data extents
// stored, chunks/extent-map.ts): released through the real daemon, read back in pieces
// and whole, byte-exact, the copy's holes left holes. ext4 and xfs.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/engine/state-record.js';
import { applyActions, daemonLayout, pattern, startDaemon, type DaemonProc } from './harness.js';

const MiB = 1024 * 1024;
const stateOf = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE))?.state ?? 'resident';

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 1 << 28 }, (err, stdout, stderr) => {
      const c = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof c === 'number' ? c : 1, stdout, stderr: stderr.toString() });
    }),
  );
}

for (const type of ['ext4', 'xfs'] as const) {
  describe(`runs of chunks over a sparse copy on ${type}`, () => {
    let fs: LoopFs;
    let d: DaemonProc;
    let path: string;
    const SIZE = 12 * MiB + 4321;
    const want = Buffer.alloc(SIZE);
    // Data at [0, 1 MiB), [3 MiB + 8 KiB, 5 MiB), [9 MiB, EOF); holes between.
    const extents: [number, number][] = [
      [0, MiB],
      [3 * MiB + 8192, 5 * MiB],
      [9 * MiB, SIZE],
    ];

    before(async () => {
      fs = mountLoopFs(type);
      let policy: string;
      let stateDir: string;
      let data: string;
      ({ stateDir, data, policy } = daemonLayout(fs));
      path = join(data, 'sparse.img');
      const fd = openSync(path, 'w');
      try {
        for (const [i, [a, b]] of extents.entries()) {
          const c = pattern(b - a, 90 + i);
          c.copy(want, a);
          writeSync(fd, c, 0, c.length, a);
        }
      } finally {
        closeSync(fd);
      }
      d = startDaemon([policy], stateDir);
      await d.ready;
      const acts = await applyActions(policy, stateDir);
      assert.equal(acts.get('sparse.img')?.status, 'done', JSON.stringify(acts.get('sparse.img')));
      assert.equal(stateOf(path), 'released');
      assert.ok(decodeRecord(lgetxattr(path, XATTR_STATE))?.copy?.sparse, 'the copy stores only the data extents');
    });
    after(async () => {
      try {
        if (d) assert.equal((await d.stop()).code, 0);
      } finally {
        fs?.unmount();
      }
    });

    test('pieces across data and holes, then a sequential read: byte-exact; holes stay holes', async () => {
      for (const [off, len] of [
        [MiB - 4096, 8192], // data into a hole
        [3 * MiB, 16384], // hole into data
        [7 * MiB, 4096], // inside a hole
        [SIZE - 100, 100], // the tail
      ] as const) {
        const r = await run('dd', [`if=${path}`, 'iflag=skip_bytes,count_bytes', `skip=${off}`, `count=${len}`, 'bs=64k', 'status=none']);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stdout.equals(want.subarray(off, off + len)), `bytes at ${off}+${len}`);
      }
      const c = await run('cat', [path]);
      assert.equal(c.code, 0, c.stderr);
      assert.ok(c.stdout.equals(want), 'whole file byte-exact');
      assert.equal(stateOf(path), 'archived');
      const dataBytes = extents.reduce((n, [a, b]) => n + (b - a), 0);
      assert.ok(statSync(path).blocks * 512 < dataBytes + 2 * MiB, `holes stay holes: ${statSync(path).blocks * 512} allocated for ${dataBytes} of data`);
    });
  });
}
