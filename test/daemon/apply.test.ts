// `tier apply` through the daemon, end to end with the real CLI: releases run inside the
// daemon (its marks), the catalog the engine writes is what the next daemon marks at
// start-up, and without a daemon releases are refused.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { pattern, runCli, startDaemon, writePolicy } from '../helpers/daemon.js';

const stateOf = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE))?.state ?? 'resident';

describe('tier apply through the daemon', () => {
  let fs: LoopFs;
  let stateDir: string;
  let policy: string;
  const files: { path: string; content: Buffer }[] = [];

  before(() => {
    fs = mountLoopFs('ext4');
    stateDir = join(fs.scratch, 'state');
    const tierDir = join(fs.scratch, 'tier');
    const data = join(fs.dir, 'data');
    mkdirSync(data);
    mkdirSync(tierDir);
    policy = writePolicy(fs.scratch, data, tierDir, 'size > 0B -> release to slow');
    for (const [i, size] of [1, 4095, 4096, 4097, 2 * 1024 * 1024 + 1].entries()) {
      const path = join(data, `f${i} ünï code.bin`);
      const content = pattern(size, 10 + i);
      writeFileSync(path, content);
      files.push({ path, content });
    }
  });
  after(() => fs?.unmount());

  test('without a daemon, releases are refused and nothing is released', async () => {
    const r = await runCli(['apply', policy, '--state-dir', stateDir]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /no recall service running/);
    for (const f of files) assert.equal(stateOf(f.path), 'resident');
  });

  test('a dry run through the daemon changes nothing', async () => {
    const d = startDaemon([policy], stateDir);
    try {
      await d.ready;
      const r = await runCli(['apply', policy, '--dry-run', '--state-dir', stateDir]);
      assert.equal(r.code, 0, r.stderr);
      for (const f of files) {
        assert.equal(stateOf(f.path), 'resident');
        assert.ok(statSync(f.path).blocks > 0);
      }
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  });

  test('releases in the daemon; the next daemon marks them from the catalog; reads are byte-exact', async () => {
    let d = startDaemon([policy], stateDir);
    try {
      await d.ready;
      const r = await runCli(['apply', policy, '--state-dir', stateDir]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      for (const f of files) {
        assert.equal(stateOf(f.path), 'released', f.path);
        assert.ok(statSync(f.path).blocks * 512 <= 4096, `${f.path}: blocks freed`);
      }
      const again = await runCli(['apply', policy, '--state-dir', stateDir, '--json']);
      assert.equal(again.code, 0);
      assert.doesNotMatch(again.stdout, /"status":"done"/, 'a second run does no new work');
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
    // A new daemon (new group: the old marks are gone) marks every released file at start-up.
    d = startDaemon([policy], stateDir);
    try {
      await d.ready;
      const status = await (await connectDaemon(stateDir))!.status();
      // Under the filesystem mark (recall/marks.ts) nothing is marked per file.
      assert.equal(status.startup.marked, status.startup.filesystems ? 0 : files.length);
      for (const f of files) assert.ok(readFileSync(f.path).equals(f.content), `${f.path} reads back`);
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  });
});
