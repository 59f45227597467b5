// The filesystem mark's kill window (recall/marks.ts), ext4 and xfs: the worker is
// SIGKILLed (FAULT INJECTION, src/engine/fault.ts) at a point of the release from its
// lease on, and the supervisor is held stopped (SIGSTOP) so no new worker flushes anything:
// a reader of the file in that gap must never see zeros. It either reads the local data
// (not punched yet) or waits for its event, which the next worker answers from the tier
// once the supervisor runs again. A release that left an ignore mark on the punched file
// (silencing its events) fails here with zeros.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { daemonLayout, onceReader, pattern, readAt, startDaemon, type DaemonProc } from '../helpers/daemon.js';

const SIZE = 300_000;
// From the lease to the unlock (the file is punched from after-punch on).
const POINTS = ['after-lease', 'after-punch', 'after-futimens', 'before-unlock'];
// xfs: the points where the file is punched and the old silencer (an ignore mark) was still on.
const XFS_POINTS = ['after-punch', 'after-futimens'];

for (const type of ['ext4', 'xfs'] as const)
  describe(`filesystem mark: worker killed mid-release, supervisor stopped, ${type}`, () => {
    let fs: LoopFs;
    let d: DaemonProc;
    let stateDir: string;
    let policy: string;
    let data: string;
    let faultFile: string;

    const serving = async (): Promise<void> => {
      for (let i = 0; i < 600; i++) {
        try {
          const c = await connectDaemon(stateDir);
          if (c && (await c.status()).startup) return;
        } catch {
          // the new worker is not up yet
        }
        await sleep(50);
      }
      throw new Error('no worker serving after 30 s');
    };

    /** An apply through the control socket; the worker dies at the armed point. */
    const applyDies = async (): Promise<void> => {
      const c = (await connectDaemon(stateDir))!;
      await c.apply({ policyFile: policy, dryRun: false }).then(
        () => assert.fail('the apply finished: the worker did not die at the fault point'),
        () => {},
      );
      assert.equal(existsSync(faultFile), false, 'the fault point was reached');
    };

    before(async () => {
      fs = mountLoopFs(type);
      ({ stateDir, data, policy } = daemonLayout(fs));
      faultFile = join(fs.scratch, 'fault');
      // Released by the policy: names starting with "r"; the rest stays.
      writeFileSync(policy, readFileSync(policy, 'utf8').replace('rule all: size >= 0B -> release to slow', 'rule rel: name ~ "r*" -> release to slow\n  rule rest: size >= 0B -> keep'));
      d = startDaemon([policy], stateDir, [], { env: { TIER_FAULT_FILE: faultFile, TIER_MARKS: '' } });
      await d.ready;
      const st = await (await connectDaemon(stateDir))!.status();
      assert.equal(st.startup.filesystems, 1, 'the loop filesystem is under the filesystem mark');
    });
    after(async () => {
      try {
        if (d) {
          d.proc.kill('SIGCONT');
          assert.equal((await d.stop()).code, 0);
        }
      } finally {
        fs?.unmount();
      }
    });

    // While no worker serves, the supervisor answers events itself (daemon/drain.ts). Under
    // the filesystem mark every new or uncached file raises one: those with no released
    // record are allowed (all their data is local), not failed with EIO.
    test('worker killed, the supervisor drains: a new file can be created and read meanwhile', async () => {
      await serving();
      const p = join(data, 'r-drain');
      writeFileSync(p, pattern(SIZE, 7));
      writeFileSync(faultFile, 'after-lease 1');
      await applyDies();
      const q = join(data, 'new-in-gap');
      writeFileSync(q, 'made while no worker served');
      assert.equal(readFileSync(q, 'utf8'), 'made while no worker served');
      await serving();
      unlinkSync(q);
      unlinkSync(p);
    });

    for (const point of type === 'xfs' ? XFS_POINTS : POINTS)
      test(`killed at ${point}: a reader in the gap reads the data, never zeros`, async () => {
        await serving();
        const name = `r-${point}`;
        const p = join(data, name);
        const want = pattern(SIZE, point.length);
        writeFileSync(p, want);
        const original = join(fs.scratch, `${name}.orig`);
        writeFileSync(original, want);
        // Read once: under the filesystem mark the handler silences it (an ignore mark).
        assert.deepEqual(await readAt(p, 0, SIZE), want);
        writeFileSync(faultFile, `${point} 1`);
        d.proc.kill('SIGSTOP'); // the supervisor: no new worker, nothing flushed
        let reader: ReturnType<typeof onceReader> | null = null;
        try {
          await applyDies();
          if (POINTS.indexOf(point) >= POINTS.indexOf('after-punch')) assert.equal(statSync(p).blocks, 0, 'punched before the kill');
          reader = onceReader(p, original, 0, SIZE, 200);
          const early = await Promise.race([reader, sleep(1000).then(() => null)]);
          if (early) assert.ok(early.ok && !early.mismatch, `a reader in the gap: ${JSON.stringify(early)}`);
        } finally {
          d.proc.kill('SIGCONT');
        }
        const res = await reader!;
        assert.ok(res.ok, `the reader, once a worker serves again: ${JSON.stringify(res)}`);
        await serving();
        assert.deepEqual(await readAt(p, 0, SIZE), want);
        unlinkSync(p); // the next round's apply must reach its own file first
      });
  });
