// `tier wait-ready` against a real daemon: it returns only once released files are marked,
// so a read right after it gets the data, never zeros (the reason systemd runs it).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { pattern, releaseByHand, runCli, startDaemon, daemonLayout, type DaemonProc } from '../helpers/daemon.js';

describe('tier wait-ready', () => {
  let fs: LoopFs;
  let d: DaemonProc | undefined;
  before(() => {
    fs = mountLoopFs('ext4');
  });
  after(async () => {
    if (d) await d.stop();
    fs.unmount();
  });

  test('no daemon: gives up after the timeout with a message, exit 1', async () => {
    const r = await runCli(['wait-ready', '--state-dir', join(fs.scratch, 'nobody'), '--timeout', '1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /did not answer on .*nobody\/control\.sock within 1s/);
  });

  test('started before the daemon, it returns once released files are marked: they read back', async () => {
    const { stateDir: state, tierDir, data, policy } = daemonLayout(fs);
    const files = [0, 1, 2].map((i) => {
      const p = join(data, `f${i}`);
      writeFileSync(p, pattern((64 + i) * 4096, 90 + i));
      return p;
    });
    for (const f of files) await releaseByHand(f, 'slow', tierDir, state);
    assert.ok(statSync(files[0]!).blocks * 512 < 64 * 4096 / 2, 'released by hand: the data blocks are gone');
    const waiting = runCli(['wait-ready', '--state-dir', state, '--timeout', '120']);
    d = startDaemon([policy], state);
    const r = await waiting;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'ready');
    files.forEach((f, i) => assert.ok(readFileSync(f).equals(pattern((64 + i) * 4096, 90 + i)), `${f} reads its data`));
  });

  test('tier metrics prints the daemon\'s exposition: the recalls above are counted with their bytes', async () => {
    const r = await runCli(['metrics', '--state-dir', join(fs.scratch, 'state')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^# TYPE tier_recalls_total counter$/m);
    const bytes = Number(/^tier_recall_bytes_total (\d+)$/m.exec(r.stdout)?.[1]);
    assert.equal(bytes, (64 + 65 + 66) * 4096, 'every byte of the three files came back from the tier once');
    assert.match(r.stdout, /^tier_recall_latency_seconds_count [1-9]\d*$/m);
  });
});
