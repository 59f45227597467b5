// Power cuts with recalled bytes not yet synced (issue 11: no fdatasync per chunk).
// `xfs_io -x -c shutdown MOUNT` (no -f: the log is not flushed) is a power cut without a
// reboot on ext4 and xfs (kernel-facts.md); then unmount, mount again, start a new group
// and service, mark the files again, and read every byte:
// - a partial recall whose resident bitmap reached the disk but whose bytes did not (an
//   fsync of another file commits the metadata): the bits are dropped, the chunks fetched
//   again (without chunks/fs-resident.ts lostChunks this reads zeros);
// - a user's fsync'ed write into a recalled chunk survives and is never overwritten;
// - a cut in the middle of a sequential recall.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_WHOLE_FILE_FOR } from '../../src/dsl/ast.js';
import { createGroup } from '../../src/kernel/fanotify.js';
import { silentLogger } from '../../src/log.js';
import { RecallService } from '../../src/recall/service.js';
import { makeReleased, pattern, residentOf, run, startHarness, stateOf, type Harness } from './harness.js';

const KiB = 1024;
const CHUNK = 256 * KiB;

const PY_WRITE_FSYNC = `import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, bytes.fromhex(sys.argv[3]), int(sys.argv[2]))
os.fsync(fd)
os.close(fd)`;

/** Power cut, unmount, mount again; a new group and service over the same tier; marks the given files. */
async function cutAndRestart(h: Harness, files: string[]): Promise<{ svc: RecallService; group: number; close(): Promise<void> }> {
  execFileSync('xfs_io', ['-x', '-c', 'shutdown', h.fs.dir]);
  await h.svc.stop();
  closeSync(h.group);
  const img = join(dirname(h.fs.dir), 'fs.img');
  execFileSync('umount', [h.fs.dir]);
  execFileSync('mount', ['-o', 'loop', img, h.fs.dir]);
  const group = createGroup('pre-content');
  const svc = new RecallService({
    groupFd: group,
    mode: 'pre-content',
    tiers: new Map([[h.tier.name, h.tier]]),
    settings: { wholeFileFor: DEFAULT_WHOLE_FILE_FOR },
    inflightPath: join(h.fs.scratch, 'inflight2'),
    log: silentLogger,
    onRecall: () => {},
    tuning: new Map([[h.tier.name, h.tuning]]),
  });
  await svc.start();
  for (const f of files) {
    const fd = openSync(f, 'r'); // before the mark: no event
    try {
      svc.markReleased(fd);
    } finally {
      closeSync(fd);
    }
  }
  return {
    svc,
    group,
    async close() {
      await svc.stop();
      closeSync(group);
    },
  };
}

for (const type of ['ext4', 'xfs'] as const) {
  describe(`power cut during and after recalls on ${type}`, () => {
    test('lost recalled bytes are fetched again, a fsynced user write survives, a cut mid-recall leaves nothing wrong', async () => {
      const h = await startHarness({ type, sizeMiB: type === 'xfs' ? 320 : 160, tuning: { chunk: CHUNK, readahead: 1024 * KiB } });
      let after: Awaited<ReturnType<typeof cutAndRestart>> | null = null;
      try {
        const lostData = pattern(4 * 1024 * KiB + 777, 81);
        const userData = pattern(2 * 1024 * KiB + 5, 82);
        const midData = pattern(48 * 1024 * KiB, 83);
        const lost = await makeReleased(h, 'lost.bin', lostData);
        const user = await makeReleased(h, 'user.bin', userData);
        const mid = await makeReleased(h, 'mid.bin', midData);

        // lost.bin: chunks 2..5 recalled (in the page cache only), the bitmap written.
        const r = await run('dd', [`if=${lost}`, 'bs=64k', 'skip=8', 'count=16', 'status=none']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((await stateOf(lost))?.state, 'partial');

        // user.bin: chunk 1 recalled, then a user writes into it and fsyncs.
        const USER_AT = CHUNK + 1000;
        const USER_HEX = 'deadbeef'.repeat(64);
        const w = await run('python3', ['-c', PY_WRITE_FSYNC, user, String(USER_AT), USER_HEX]);
        assert.equal(w.code, 0, w.stderr);
        const userWant = Buffer.from(userData);
        Buffer.from(USER_HEX, 'hex').copy(userWant, USER_AT);

        // Commit the metadata (lost.bin's bitmap) without lost.bin's data: fsync another file.
        writeFileSync(join(h.fs.dir, 'other'), 'x');
        const o = await run('python3', ['-c', 'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.fsync(fd)', join(h.fs.dir, 'other')]);
        assert.equal(o.code, 0, o.stderr);
        const bitsBefore = await residentOf(lost);
        assert.ok(bitsBefore && bitsBefore.length > 0, 'bitmap stored');

        // mid.bin: a cold cat, cut while it runs.
        const f0 = h.svc.stats().bytesFetched;
        const cat = run('cat', [mid]);
        for (let i = 0; i < 500 && h.svc.stats().bytesFetched - f0 < 2 * CHUNK; i++) await sleep(2);
        after = await cutAndRestart(h, [lost, user, mid]);
        await cat; // EIO or killed by the shutdown: whatever it read is not checked here

        // After the restart: every byte right.
        for (const [p, want] of [
          [lost, lostData],
          [user, userWant],
          [mid, midData],
        ] as const) {
          const c = await run('cat', [p]);
          assert.equal(c.code, 0, `${p}: ${c.stderr}`);
          assert.equal(c.stdout.length, want.length, p);
          if (!c.stdout.equals(want)) {
            let k = 0;
            while (c.stdout[k] === want[k]) k++;
            assert.fail(`${p}: first wrong byte at ${k} (chunk ${Math.floor(k / CHUNK)}): got ${c.stdout[k]}, want ${want[k]}`);
          }
        }
        assert.equal((await stateOf(user))?.state, 'dirty', 'user.bin was written: complete and dirty');
      } finally {
        if (after) await after.close();
        await h.tier.close();
        h.fs.unmount();
      }
    });
  });
}
