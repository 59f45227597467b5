import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { LocalTier } from '../../src/tiers/local.js';
import type { Tier } from '../../src/tiers/tier.js';
import { migrate } from '../../src/engine/execute.js';
import { setPinned } from '../../src/engine/actions.js';
import { runStatus, statusOf } from '../../src/cli/commands/status.js';
import { silentLogger } from '../../src/log.js';
import { startTestRecall, type TestRecall } from '../engine/test-recall.js';

describe('tier status reads the record directly', () => {
  let fs: LoopFs;
  let recall: TestRecall;
  let tiers: Map<string, Tier>;
  before(() => {
    fs = mountLoopFs('xfs');
    tiers = new Map<string, Tier>([['nas', new LocalTier('nas', join(fs.scratch, 'tier'))]]);
    recall = startTestRecall(tiers);
  });
  after(() => {
    recall?.stop();
    fs?.unmount();
  });

  test('resident, archived, released and pinned files, as rows and as text', async () => {
    const deps = { tiers, catalog: null, marker: recall, log: silentLogger };
    const [res, arc, rel] = ['res', 'arc', 'rel name'].map((n) => join(fs.dir, n)) as [string, string, string];
    for (const p of [res, arc, rel]) writeFileSync(p, Buffer.alloc(100_000, 1));
    assert.equal((await migrate(arc, 'nas', 'archive', deps)).status, 'done');
    const r = await migrate(rel, 'nas', 'release', deps);
    assert.equal(r.status, 'done');
    assert.equal((await setPinned(res, true, { catalog: null })).status, 'done');
    assert.deepEqual(statusOf(res), { path: res, state: 'resident', pinned: true, size: 100_000, residentBytes: 100_000, tier: null, key: null });
    assert.equal(statusOf(arc).state, 'archived');
    assert.equal(statusOf(arc).residentBytes, 100_000);
    // XFS keeps the record in the inode: a released file occupies nothing.
    assert.deepEqual(statusOf(rel), { path: rel, state: 'released', pinned: false, size: 100_000, residentBytes: 0, tier: 'nas', key: r.key! });
    const out: string[] = [];
    const err: string[] = [];
    const code = runStatus([res, rel, join(fs.dir, 'missing')], false, { out: (l) => out.push(l), err: (l) => err.push(l), isTTY: false });
    assert.equal(code, 1);
    assert.match(out[0]!, /^STATE\s+PINNED\s+SIZE\s+RESIDENT\s+TIER\s+KEY\s+PATH$/);
    assert.match(out[1]!, /^resident\s+yes\s+98 KiB\s+98 KiB\s+-/);
    assert.match(out[2]!, new RegExp(`^released\\s+no\\s+98 KiB\\s+0 B\\s+nas\\s+${r.key}\\s+.*rel name$`));
    assert.deepEqual(err, [`tier status: ${join(fs.dir, 'missing')}: no such file`]);
  });
});
