// `tier doctor` as a real process: on loop ext4 (pre-content works), on tmpfs (no
// pre-content events there: the content fallback and why), a bad directory, and whether
// a daemon answers on the state dir.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { runCli, startDaemon, writePolicy } from '../helpers/daemon.js';

interface Report {
  usable: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
}
const check = (r: Report, name: string) => r.checks.find((c) => c.name === name)!;

describe('tier doctor', () => {
  let fs: LoopFs;
  before(() => {
    fs = mountLoopFs('ext4');
  });
  after(() => fs?.unmount());

  test('ext4: pre-content mode, trusted xattrs, exit 0; leaves nothing behind', async () => {
    const r = await runCli(['doctor', fs.dir, '--json', '--state-dir', join(fs.scratch, 'nostate')]);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as Report;
    assert.equal(rep.usable, true);
    assert.match(check(rep, 'filesystem').detail, /^ext4 /);
    assert.match(check(rep, 'recall mode').detail, /^pre-content/);
    assert.equal(check(rep, 'trusted xattrs').ok, true);
    assert.match(check(rep, 'kernel').detail, /^\d+\.\d+/);
    assert.match(check(rep, 'lease-break-time').detail, /^\d+ s/);
    assert.match(check(rep, 'hole-skippers').detail, /SEEK_DATA.*whole_file_for \(default: cp, .*qemu-img/);
    assert.equal(check(rep, 'daemon').ok, false);
    assert.match(check(rep, 'daemon').detail, /not running/);
    assert.deepEqual(readdirSync(fs.dir).filter((n) => n.startsWith('.tier')), [], 'probe files removed');
  });

  test('tmpfs: the content fallback, with the reason pre-content failed', async () => {
    const dir = mkdtempSync('/dev/shm/tier-doctor-');
    try {
      const r = await runCli(['doctor', dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /recall mode\s+content fallback: whole file recalled at open .*tmpfs.*pre-content: mark on .*: (ENOTSUP|EOPNOTSUPP)/);
      assert.match(r.stdout, /tier can work on /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing directory: usage error, one line, no stack', async () => {
    const r = await runCli(['doctor', join(fs.dir, 'missing')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^tier: .*missing.*ENOENT/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  test('reports a running daemon with its worker pid and mode', async () => {
    const data = join(fs.dir, 'data');
    const tierDir = join(fs.scratch, 'tier');
    mkdirSync(data, { recursive: true });
    mkdirSync(tierDir, { recursive: true });
    const stateDir = join(fs.scratch, 'state');
    const d = startDaemon([writePolicy(fs.scratch, data, tierDir)], stateDir);
    try {
      await d.ready;
      const r = await runCli(['doctor', fs.dir, '--state-dir', stateDir]);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /ok {4}daemon {12}running \(worker pid \d+, mode pre-content/);
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  });
});
