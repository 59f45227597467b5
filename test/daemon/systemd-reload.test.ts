// `systemctl reload tier` is a takeover with no gap (issue 12, item 6): the test runs the
// ExecReload= lines of packaging/tier.service as written (only the tier binary and the
// policy glob replaced), while readers read a released file. PID 1 here is not systemd:
// fake-systemd.py binds the notify socket as systemd would and reports each datagram with
// its sender's pid (SCM_CREDENTIALS, what NotifyAccess= checks). What systemd needs for a
// reload by takeover: the new supervisor sends MAINPID=<itself> before the old main process
// exits (else systemd takes that exit for the unit's end and stops the unit), it stores
// the group (FDSTORE=1), the ExecReload command ends once the new daemon serves, and the
// old daemon exits 0 by itself. Then `systemctl stop` (SIGTERM to the new MAINPID) takes
// the group out of the store.
// The unit's `tier` is this checkout's compiled CLI (bin/tier.js: a tsx start is slow).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { ensureDist } from '../reliability/dist-daemon.js';
import { REPO, pattern, releaseByHand, startDaemon, daemonLayout, fakeSystemd, onceReader, streamReader, within } from '../helpers/daemon.js';

const MiB = 1024 * 1024;


/** The shell command of each `KEY=/bin/sh -c '...'` line of the unit. */
function unitShellLines(key: string): string[] {
  const unit = readFileSync(join(REPO, 'packaging/tier.service'), 'utf8');
  return unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => {
      const m = /^[A-Za-z]+=\/bin\/sh -c '(.*)'$/.exec(l);
      assert.ok(m, `${key}= runs /bin/sh -c '...': ${l}`);
      return m[1]!;
    });
}

const procState = (pid: number): string | null => {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0]!;
  } catch {
    return null;
  }
};

test('packaging/tier.service: reload is a takeover, NotifyAccess=all; systemd-analyze verify accepts the unit', () => {
  const unit = readFileSync(join(REPO, 'packaging/tier.service'), 'utf8');
  const reload = unitShellLines('ExecReload');
  assert.match(reload.at(-1)!, /tier daemon --takeover --detach /);
  assert.match(unit, /^NotifyAccess=all$/m);
  assert.doesNotMatch(unit, /^ExecReload=.*kill -HUP/m);
  const v = spawnSync('systemd-analyze', ['verify', join(REPO, 'packaging/tier.service')], { encoding: 'utf8' });
  if (!v.error) assert.equal(v.status, 0, `systemd-analyze verify: ${v.stderr}${v.stdout}`); // skipped where not installed
});

for (const fsType of ['ext4', 'xfs'] as const) {
  describe(`systemctl reload: takeover with no gap (${fsType})`, () => {
    let fs: LoopFs;
    let stateDir: string;
    let tierDir: string;
    let data: string;
    let policy: string;
    before(() => {
      fs = mountLoopFs(fsType);
      ({ stateDir, tierDir, data, policy } = daemonLayout(fs));
    });
    after(() => fs?.unmount());

    test('ExecReload takes the group over, names the new MAINPID before the old daemon exits; readers get right bytes, no errors', async () => {
      const path = join(data, 'reload.bin');
      const original = join(fs.scratch, 'reload.orig');
      writeFileSync(path, pattern(8 * MiB, 71));
      writeFileSync(original, readFileSync(path));
      await releaseByHand(path, 'slow', tierDir, stateDir);

      const sock = join(fs.scratch, 'notify.sock');
      const { proc: sd, lines } = fakeSystemd(sock);
      const env = { NOTIFY_SOCKET: sock };
      ensureDist();
      const bin = join(fs.scratch, 'bin');
      mkdirSync(bin, { recursive: true });
      const tier = join(bin, 'tier');
      writeFileSync(tier, `#!/bin/sh\nexec ${process.execPath} ${join(REPO, 'bin/tier.js')} "$@"\n`);
      chmodSync(tier, 0o755);

      const a = startDaemon([policy], stateDir, [], { env });
      let newPid = 0;
      const workerPids: number[] = [];
      let streams: ReturnType<typeof streamReader>[] = [];
      try {
        await within('fake systemd listens', 5000, () => lines.some((l) => l.bound));
        await a.ready;
        await within('the first daemon stores the group', 5000, () => lines.some((l) => l.pid === a.proc.pid && String(l.text).includes('FDSTORE=1')));
        const before = await (await connectDaemon(stateDir))!.status();

        // systemctl reload: the ExecReload= lines in order, each must succeed.
        const shEnv = { ...process.env, ...env, TIER_STATE_DIR: stateDir, TIER_LOG_LEVEL: 'info', TIER_DAEMON_ARGS: '', MAINPID: String(a.proc.pid) };
        let reloadOut = '';
        let reloadErr = '';
        const reload = (async () => {
          for (const cmd of unitShellLines('ExecReload')) {
            const c = cmd.replaceAll('/usr/local/bin/tier', tier).replaceAll('/etc/tier/policies/*.hsmpolicy', policy);
            if (process.env.TIER_TEST_DAEMON_LOG) appendFileSync(`${process.env.TIER_TEST_DAEMON_LOG}.reload`, `${new Date().toISOString()} RUN ${c}\n`);
            const p = spawn('/bin/sh', ['-c', c], { env: shEnv, stdio: ['ignore', 'pipe', 'pipe'] });
            p.stdout!.on('data', (d) => (reloadOut += d));
            p.stderr!.on('data', (d) => {
              reloadErr += d;
              if (process.env.TIER_TEST_DAEMON_LOG) appendFileSync(`${process.env.TIER_TEST_DAEMON_LOG}.reload`, d);
            });
            const code = await new Promise<number | null>((r) => p.on('exit', r));
            if (code !== 0) return code;
          }
          return 0;
        })();
        // Two readers read all through the reload, each opening the file afresh for every range.
        streams = [streamReader(path, original, '0,2,4'), streamReader(path, original, '1,3,5,7')];
        const code = await reload;
        const streamed = await Promise.all(streams.map((r) => r.stop()));
        assert.equal(code, 0, `the reload succeeds\n${reloadErr}`);
        assert.deepEqual(reloadOut.trim().split('\n').at(-1), 'ready', 'ExecReload returns once the new daemon serves');

        const aExit = await a.exited;
        const aExitedAt = Date.now();
        assert.equal(aExit.code, 0, 'the old daemon exits by itself, 0');
        assert.ok(a.logs.some((l) => l.msg === 'handing the group over to a new daemon'));
        const named = lines.find((l) => String(l.text).startsWith('MAINPID='));
        assert.ok(named, 'the new daemon names the main pid');
        newPid = Number(String(named.text).slice('MAINPID='.length));
        assert.equal(named.pid, newPid, 'sent by the new supervisor itself (NotifyAccess=all)');
        assert.notEqual(newPid, a.proc.pid);
        assert.ok((named.t as number) <= aExitedAt, 'MAINPID= arrives before the old main process exits');
        assert.ok(lines.some((l) => l.pid === newPid && String(l.text).includes('FDSTORE=1')), 'the new daemon stores the group');

        for (const r of streamed) {
          assert.equal(r.mismatch, 0, 'no reader saw zeros');
          assert.equal(r.eio, 0, 'no EIO during the reload');
          assert.deepEqual(r.errors, []);
          assert.ok(r.reads >= 5, `the reader read all through the reload (${r.reads} reads)`);
        }
        const after = await (await connectDaemon(stateDir))!.status();
        workerPids.push(after.pid);
        assert.equal(after.supervisorPid, newPid);
        assert.notEqual(after.pid, before.pid);
        assert.equal(after.startup.inherited, true, 'marks inherited, not placed again');
        const fresh = await onceReader(path, original, 6 * MiB + 3, 4096); // a chunk nobody read: the marks came along
        assert.equal(fresh.ok, true);
        assert.ok(readFileSync(path).equals(readFileSync(original)), 'the whole file reads back through the new daemon');

        // systemctl stop: SIGTERM to the (new) main pid; the final stop empties the store.
        process.kill(newPid, 'SIGTERM');
        await within('the group leaves the store', 30_000, () => lines.some((l) => l.pid === newPid && String(l.text).includes('FDSTOREREMOVE=1')));
        await within('the new daemon exits', 30_000, () => procState(newPid) === null || procState(newPid) === 'Z');
        assert.deepEqual(lines.at(-1)!.stored, []);
      } finally {
        for (const r of streams) r.proc.kill('SIGKILL');
        // Whatever daemon serves now (the detached one, if the test failed before it knew its pid).
        const st = await (await connectDaemon(stateDir).catch(() => null))?.status().catch(() => null);
        if (st && st.supervisorPid !== a.proc.pid) workerPids.push(st.supervisorPid, st.pid);
        for (const pid of [newPid, ...workerPids]) if (pid && procState(pid) !== null) process.kill(pid, 'SIGKILL');
        await a.stop();
        sd.kill('SIGKILL');
      }
    });
  });
}
