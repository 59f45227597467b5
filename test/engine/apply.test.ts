import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, statfsSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { parsePolicy } from '../../src/dsl/index.js';
import type { PolicyFile } from '../../src/dsl/ast.js';
import { LocalTier } from '../../src/tiers/local.js';
import type { Tier } from '../../src/tiers/tier.js';
import { runApply, type ApplyDeps, type ProgressEvent, type ActionEvent } from '../../src/engine/apply.js';
import { NO_RECALL_SERVICE } from '../../src/engine/execute.js';
import { openCatalog, type Catalog } from '../../src/engine/catalog.js';
import { XATTR_STATE, decodeRecord } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { silentLogger } from '../../src/log.js';
import { startTestRecall, type TestRecall } from './test-recall.js';

const DAY = 86_400_000;
const record = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

function policyOf(text: string): PolicyFile {
  const r = parsePolicy(text, 'test.hsmpolicy');
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), []);
  return r.policy!;
}

function tierFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && !d.name.endsWith('.meta.json'))
    .map((d) => d.name);
}

describe('runApply on a loop-mounted ext4', () => {
  let fs: LoopFs;
  let recall: TestRecall;
  let catalog: Catalog;
  let deps: ApplyDeps;
  let tierDir: string;
  let root: string;
  const now = Date.now();

  before(() => {
    fs = mountLoopFs('ext4', 64);
    tierDir = join(fs.scratch, 'tier');
    root = join(fs.dir, 'data');
    const tiers = new Map<string, Tier>([['nas', new LocalTier('nas', tierDir)]]);
    recall = startTestRecall(tiers);
    catalog = openCatalog(join(fs.scratch, 'state', 'catalog.db'));
    deps = { tiers, catalog, marker: recall, log: silentLogger };
    mkdirSync(join(root, 'logs'), { recursive: true });
    const files: [string, number, number][] = [
      ['old.bin', 300_000, 40],
      ['older.bin', 200_000, 90],
      ['new.bin', 100_000, 1],
      ['tiny.txt', 10, 100],
      ['logs/app.log', 50_000, 10],
      ['skip.part', 50_000, 100],
    ];
    for (const [name, size, ageDays] of files) {
      const p = join(root, name);
      writeFileSync(p, Buffer.alloc(size, name.length));
      const t = new Date(now - ageDays * DAY);
      utimesSync(p, t, t);
    }
  });
  after(() => {
    recall?.stop();
    catalog?.close();
    fs?.unmount();
  });

  const text = () => `tier nas { local "${tierDir}" }
fileset data { root "${root}" exclude "**/*.part" }
policy tidy on data {
  order by last_access asc
  rule small: size < 1KiB -> keep
  rule logs: name ~ "*.log" -> archive to nas
  rule old: last_access > 30d -> release to nas
}`;

  test('a dry run plans but changes nothing: no object, no xattr, no block freed', async () => {
    const before = new Map(readdirSync(root, { recursive: true }).map((n) => [String(n), statSync(join(root, String(n)), { bigint: true })]));
    const events: ProgressEvent[] = [];
    const res = await runApply({ policyFile: policyOf(text()), dryRun: true, now }, deps, (e) => events.push(JSON.parse(JSON.stringify(e))));
    const actions = events.filter((e): e is ActionEvent => e.type === 'action');
    assert.deepEqual(
      actions.map((a) => [a.path, a.action, a.rule, a.status, a.tier]),
      [
        ['older.bin', 'release', 'old', 'planned', 'nas'],
        ['old.bin', 'release', 'old', 'planned', 'nas'],
        ['logs/app.log', 'archive', 'logs', 'planned', 'nas'],
      ],
    );
    assert.equal(actions[0]!.span.line, 7, 'the rule that chose it, with its source line');
    assert.deepEqual(res.actions, { archive: { files: 1, bytes: 50_000 }, release: { files: 2, bytes: 500_000 } });
    assert.equal(res.policies[0]!.skipped.keep, 1);
    assert.equal(res.policies[0]!.skipped.unmatched, 1);
    assert.deepEqual(tierFiles(tierDir), []);
    for (const [n, st] of before) {
      const now2 = statSync(join(root, n), { bigint: true });
      assert.equal(now2.blocks, st.blocks, n);
      assert.equal(now2.mtimeNs, st.mtimeNs, n);
      if (now2.isFile()) assert.equal(record(join(root, n)), null, n);
    }
  });

  test('without a recall service, releases fail per file with a clear error and archives still run', async () => {
    const res = await runApply({ policyFile: policyOf(text()), dryRun: false, now }, { ...deps, marker: null });
    assert.equal(res.status.failed, 2);
    assert.equal(res.status.done, 1);
    assert.ok(res.failures.every((f) => f.action === 'release' && f.message.includes(NO_RECALL_SERVICE)));
    assert.equal(record(join(root, 'logs/app.log'))?.state, 'archived');
    assert.equal(record(join(root, 'old.bin')), null);
  });

  test('a real run releases and archives; the catalog knows; a second run does no new work', async () => {
    const res = await runApply({ policyFile: policyOf(text()), dryRun: false, now }, deps);
    assert.equal(res.status.failed, 0, JSON.stringify(res.failures));
    assert.equal(res.status.done, 2);
    assert.equal(res.policies[0]!.skipped.noop, 1, 'the log archived by the previous run');
    for (const n of ['old.bin', 'older.bin']) {
      assert.equal(record(join(root, n))?.state, 'released');
      assert.equal(statSync(join(root, n)).blocks <= 2, true);
    }
    assert.deepEqual([...catalog.releasedFiles()].map((r) => r.path).sort(), [join(root, 'old.bin'), join(root, 'older.bin')]);
    const runs = catalog.runs();
    assert.equal(runs.length, 2, 'the dry run is not recorded');
    assert.deepEqual((runs[0]!.summary as { done: number; failed: number }).done, 2);
    assert.deepEqual((runs[1]!.summary as { done: number; failed: number }).failed, 2);
    const again = await runApply({ policyFile: policyOf(text()), dryRun: false, now }, deps);
    assert.equal(again.policies[0]!.planned, 0);
    assert.equal(again.uploaded, 0);
    assert.ok((await readFile(join(root, 'old.bin'))).equals(Buffer.alloc(300_000, 'old.bin'.length)));
  });
});

describe('watermarks on a small filesystem', () => {
  let fs: LoopFs;
  let recall: TestRecall;
  before(() => {
    fs = mountLoopFs('ext4', 32);
  });
  after(() => {
    recall?.stop();
    fs?.unmount();
  });

  test('above the high mark, the oldest files are released until usage is below the low mark', async () => {
    const tierDir = join(fs.scratch, 'tier');
    const tiers = new Map<string, Tier>([['nas', new LocalTier('nas', tierDir)]]);
    recall = startTestRecall(tiers);
    const root = fs.dir;
    const usage = () => {
      const s = statfsSync(root);
      const used = (s.blocks - s.bfree) * s.bsize;
      return (used / (used + s.bavail * s.bsize)) * 100;
    };
    // Fill with 1 MiB files, each a day older than the next, until usage passes 85%.
    const now = Date.now();
    const names: string[] = [];
    for (let i = 0; usage() <= 85; i++) {
      const p = join(root, `f${String(i).padStart(3, '0')}`);
      writeFileSync(p, Buffer.alloc(1 << 20, i));
      names.push(p);
    }
    names.forEach((p, i) => utimesSync(p, new Date(now - (names.length - i) * DAY), new Date(now - (names.length - i) * DAY)));
    const pf = policyOf(`tier nas { local "${tierDir}" }
fileset all { root "${root}" }
policy evict on all {
  when usage > 80% until usage < 60%
  rule any: size > 0 -> release to nas
}`);
    const below = await runApply({ policyFile: policyOf(`tier nas { local "${tierDir}" }
fileset all { root "${root}" }
policy evict on all {
  when usage > 95% until usage < 60%
  rule any: size > 0 -> release to nas
}`), dryRun: false, now }, { tiers, catalog: null, marker: recall, log: silentLogger });
    assert.equal(below.status.done, 0, 'usage is under the high mark: nothing to do');
    const res = await runApply({ policyFile: pf, dryRun: false, now }, { tiers, catalog: null, marker: recall, log: silentLogger });
    assert.equal(res.status.failed, 0, JSON.stringify(res.failures));
    assert.ok(usage() < 60, `usage now ${usage()}`);
    const released = names.filter((p) => record(p)?.state === 'released');
    assert.ok(released.length > 0);
    // The released ones are exactly the oldest (a prefix of the age order), and no more
    // than needed: without the last one, usage would still be at or above 60%.
    assert.deepEqual(released, names.slice(0, released.length));
    const wm = res.policies[0]!.watermarks[0]!;
    assert.ok(wm.before > 80 && wm.projected < 60);
    const perFile = (1 << 20) / ((statfsSync(root).blocks * statfsSync(root).bsize) / 100);
    assert.ok(wm.projected + perFile >= 60, `stopped at the low mark (projected ${wm.projected}, one file ${perFile}%)`);
  });
});
