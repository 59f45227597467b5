// The fanotify mark limit (fs.fanotify.max_user_marks, ~205k on this machine) under the
// filesystem mark: every never-released file that raises an event gets an ignore mark, and a
// tree of new files still in the inode cache can use them all up. The bench's 500k-file
// tree did: fanotify_mark failed with ENOSPC and the daemon answered those opens EIO. An
// ignore mark only spares later events, so the open must go on without one.
// FAULT INJECTION: `add-ignore-mark` throws ENOSPC (TIER_FAULT_FILE) instead of making
// 205k files; the fanotify group, marks and reads are real (ext4 loop mount).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { applyActions, daemonLayout, pattern, startDaemon, writePolicy, type DaemonProc } from '../helpers/daemon.js';

const stateOf = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE))?.state ?? 'resident';

describe('filesystem mark: the fanotify mark limit reached', () => {
  let fs: LoopFs;
  let d: DaemonProc;
  let stateDir: string;
  let data: string;
  let fault: string;
  const events = async (): Promise<number> => Number((await (await connectDaemon(stateDir))!.status()).recall.events);

  before(async () => {
    fs = mountLoopFs('ext4');
    ({ stateDir, data } = daemonLayout(fs));
    const policy = writePolicy(fs.scratch, data, join(fs.scratch, 'tier'), 'name ~ "r*" -> release to slow', '', 'limit.hsmpolicy');
    writeFileSync(join(data, 'r1'), pattern(300_000, 1));
    fault = join(fs.scratch, 'fault');
    d = startDaemon([policy], stateDir, [], { env: { ...process.env, TIER_MARKS: '', TIER_FAULT_FILE: fault } });
    await d.ready;
    const acts = await applyActions(policy, stateDir);
    assert.equal(acts.get('r1')?.status, 'done', JSON.stringify([...acts]));
    assert.equal(stateOf(join(data, 'r1')), 'released');
  });
  after(async () => {
    rmSync(fault, { force: true });
    await d?.stop();
    fs?.unmount();
  });

  test('new files open and read without an ignore mark; a released file still recalls', async () => {
    writeFileSync(fault, 'add-ignore-mark 1 throw ENOSPC');
    for (let i = 0; i < 20; i++) {
      const p = join(data, `new${i}`);
      writeFileSync(p, pattern(4096, 100 + i)); // the create raises the event
      assert.ok(readFileSync(p).equals(pattern(4096, 100 + i)), p);
    }
    // No ignore mark went on: every open of the same file still comes to the daemon.
    const before = await events();
    for (let i = 0; i < 3; i++) readFileSync(join(data, 'new0'));
    assert.ok((await events()) - before >= 3, 'each open of an unignored file raises an event');
    assert.ok(readFileSync(join(data, 'r1')).equals(pattern(300_000, 1)), 'the released file reads its bytes');
    rmSync(fault);
    // With marks available again the next first open is silenced as before.
    writeFileSync(join(data, 'later'), 'x');
    readFileSync(join(data, 'later'));
    const after1 = await events();
    for (let i = 0; i < 3; i++) readFileSync(join(data, 'later'));
    assert.equal(await events(), after1, 'an ignored file raises no event');
  });
});

/**
 * Ignore marks of the fanotify group seen from processes whose command line names
 * `stateDir` (supervisor and worker hold the same group: the largest count, not the sum).
 */
function ignoreMarksOf(stateDir: string): number {
  let most = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(stateDir)) continue;
      for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
        const text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
        let n = 0;
        for (const m of text.matchAll(/ignored_mask:([0-9a-f]+)/g)) if (m[1] !== '0') n++;
        most = Math.max(most, n);
      }
    } catch {
      // gone meanwhile
    }
  }
  return most;
}

// The budget: max_user_marks is shared by every group of the user, so one daemon must not
// take it all (the bench's 500k-file tree did, and another daemon's releases failed with
// ENOSPC). Real marks here, no fault injection: the budget is set small.
describe('filesystem mark: ignore marks stay within their budget', () => {
  let fs: LoopFs;
  let d: DaemonProc;
  let stateDir: string;
  let data: string;
  const status = async () => (await (await connectDaemon(stateDir))!.status()).recall as { ignoreMarks: { held: number; budget: number; without: number } };

  before(async () => {
    fs = mountLoopFs('ext4');
    ({ stateDir, data } = daemonLayout(fs));
    const policy = writePolicy(fs.scratch, data, join(fs.scratch, 'tier'), 'name ~ "r*" -> release to slow', '', 'budget.hsmpolicy');
    writeFileSync(join(data, 'r1'), pattern(300_000, 2));
    d = startDaemon([policy], stateDir, [], { env: { ...process.env, TIER_MARKS: '', TIER_IGNORE_MARKS: '5' } });
    await d.ready;
    const acts = await applyActions(policy, stateDir);
    assert.equal(acts.get('r1')?.status, 'done', JSON.stringify([...acts]));
  });
  after(async () => {
    await d?.stop();
    fs?.unmount();
  });

  test('past the budget new files go without one, open and read right, and the released file recalls', async () => {
    const base = ignoreMarksOf(stateDir);
    for (let i = 0; i < 20; i++) {
      const p = join(data, `b${i}`);
      writeFileSync(p, pattern(4096, 200 + i));
      assert.ok(readFileSync(p).equals(pattern(4096, 200 + i)), p);
    }
    const held = ignoreMarksOf(stateDir);
    assert.ok(held <= 5, `the group holds ${held} ignore marks (was ${base}), budget 5`);
    assert.ok(held >= 1, 'ignore marks are still placed under the budget');
    const s = await status();
    assert.equal(s.ignoreMarks.budget, 5);
    assert.ok(s.ignoreMarks.without >= 15, JSON.stringify(s.ignoreMarks));
    assert.ok(readFileSync(join(data, 'r1')).equals(pattern(300_000, 2)), 'the released file reads its bytes');
  });
});
