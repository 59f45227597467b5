// systemd's fd store keeps the group when every daemon process dies (issue 12, item 6).
// PID 1 here is not systemd: fake-systemd.py binds the notify socket, keeps what FDSTORE=1
// sends and starts the next daemon with it as LISTEN_FDS, as systemd does on Restart=.
// The test kills supervisor AND worker (systemd SIGKILLs what is left of a unit whose
// main process died) while readers wait: they get EIO or right bytes, never zeros; the
// marks survive in the stored group and the restarted daemon serves them.
//
// FAULT INJECTION: fault-hang-tier.ts holds recalls in flight while a flag file exists.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { REPO, pattern, releaseByHand, startDaemon, daemonLayout, fakeSystemd, onceReader, within } from '../helpers/daemon.js';

const MiB = 1024 * 1024;

for (const fsType of ['ext4', 'xfs'] as const) {
  describe(`systemd fd store (${fsType})`, () => {
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

    test('the group outlives every daemon process in the store; the next start serves its marks', async () => {
      const path = join(data, 'stored.bin');
      const original = join(fs.scratch, 'stored.orig');
      writeFileSync(path, pattern(6 * MiB, 61));
      writeFileSync(original, readFileSync(path));
      await releaseByHand(path, 'slow', tierDir, stateDir);

      const sock = join(fs.scratch, 'notify.sock');
      const { proc: sd, lines } = fakeSystemd(sock);
      const flag = join(fs.scratch, 'hang-store');
      const nodeArgs = ['--import', './test/daemon/fault-hang-tier.ts'];
      const env = { TIER_FAULT_HANG: flag, NOTIFY_SOCKET: sock };
      let second = 0;
      let workerPid = 0;
      try {
        await within('fake systemd listens', 5000, () => lines.some((l) => l.bound));
        const d = startDaemon([policy], stateDir, [], { nodeArgs, env });
        await d.ready;
        await within('the group is stored', 5000, () =>
          lines.some((l) => String(l.text).includes('FDSTORE=1') && (l.fds as string[])[0] === 'anon_inode:[fanotify]'),
        );
        assert.ok(lines.some((l) => String(l.text).includes('FDNAME=tier-group.pre-content')));
        workerPid = (await (await connectDaemon(stateDir))!.status()).pid;

        writeFileSync(flag, '');
        const blocked = [onceReader(path, original, 0, 4096), onceReader(path, original, 3 * MiB, 8192)];
        while (!existsSync(`${flag}.log`) || readFileSync(`${flag}.log`, 'utf8').trim() === '') await sleep(20);
        d.proc.kill('SIGKILL');
        process.kill(workerPid, 'SIGKILL');
        await d.exited;
        await sleep(300);
        rmSync(flag);

        // systemd's restart: the stored group comes back as LISTEN_FDS.
        const out = join(fs.scratch, 'second.log');
        const argv = [process.execPath, '--import', 'tsx', ...nodeArgs, join(REPO, 'src/cli/main.ts'), 'daemon', policy, '--state-dir', stateDir];
        sd.stdin!.write(`spawn ${out} ${JSON.stringify(argv)}\n`);
        await within('spawned', 5000, () => lines.some((l) => l.spawned));
        second = lines.find((l) => l.spawned)!.spawned as number;
        await within('the restarted daemon is ready', 30_000, () => existsSync(out) && readFileSync(out, 'utf8').split('\n').includes('ready')).catch((e: Error) => {
          throw new Error(`${e.message}\n${existsSync(out) ? readFileSync(out, 'utf8') : '(no output)'}`);
        });
        const log = readFileSync(out, 'utf8');
        assert.match(log, /fanotify group restored from the service manager fd store: marks kept/);

        for (const r of await Promise.all(blocked)) {
          assert.equal(r.mismatch, false, 'no reader saw zeros');
          assert.equal(r.ok, true, 'right bytes once the restarted daemon serves');
        }
        // A chunk nobody read yet: right only if the mark survived in the stored group.
        const fresh = await onceReader(path, original, 5 * MiB + 11, 4096);
        assert.equal(fresh.mismatch, false);
        assert.equal(fresh.ok, true);

        process.kill(second, 'SIGTERM');
        await within('the final stop takes the group out of the store', 30_000, () => lines.some((l) => String(l.text).includes('FDSTOREREMOVE=1')));
        await within('exits', 30_000, () => !existsSync(`/proc/${second}`) || readFileSync(`/proc/${second}/stat`, 'utf8').includes(') Z'));
        assert.deepEqual(lines.at(-1)!.stored, [], 'nothing left in the store');
      } finally {
        rmSync(flag, { force: true });
        rmSync(`${flag}.log`, { force: true });
        if (second && existsSync(`/proc/${second}`)) process.kill(second, 'SIGKILL');
        if (workerPid && existsSync(`/proc/${workerPid}`)) process.kill(workerPid, 'SIGKILL');
        sd.kill('SIGKILL');
      }
    });
  });
}
