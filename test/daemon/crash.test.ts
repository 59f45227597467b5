// SIGKILL of the worker in the middle of recalls (issue 5): the supervisor keeps the group
// and its marks, the readers whose events the dead worker held get EIO (never zeros),
// and reads work again through the restarted worker.
//
// Recalls are held in flight deterministically by fault-hang-tier.ts (FAULT INJECTION:
// LocalTier reads block while a flag file exists), so the kill always lands mid-recall.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { REPO, pattern, releaseByHand, startDaemon, daemonLayout, writePolicy } from '../helpers/daemon.js';

const MiB = 1024 * 1024;

interface ReaderResult {
  code: number | null;
  eio: number;
  ok: boolean;
  mismatch: boolean;
}

function reader(file: string, original: string, off: number, len: number, tries = 2000): Promise<ReaderResult> {
  const p = spawn(process.execPath, [join(REPO, 'test/daemon/reader.mjs'), file, original, String(off), String(len), String(tries)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  p.stdout.on('data', (c) => (out += c));
  return new Promise((resolve) =>
    p.on('exit', (code) => {
      const r = JSON.parse(out.trim().split('\n').pop() || '{"eio":0,"ok":false,"mismatch":false}');
      resolve({ code, ...r });
    }),
  );
}

for (const fsType of ['ext4', 'xfs'] as const) {
  describe(`worker crash during recalls (${fsType})`, () => {
    let fs: LoopFs;
    let stateDir: string;
    let tierDir: string;
    let policy: string;
    const files: { path: string; original: string }[] = [];

    before(async () => {
      fs = mountLoopFs(fsType);
      let data: string;
      ({ stateDir, tierDir, data, policy } = daemonLayout(fs));
      for (let i = 0; i < 3; i++) {
        const path = join(data, `big${i}.bin`);
        const original = join(fs.scratch, `big${i}.orig`);
        const content = pattern(8 * MiB + 123, 100 + i);
        writeFileSync(path, content);
        writeFileSync(original, content);
        await releaseByHand(path, 'slow', tierDir, stateDir);
        files.push({ path, original });
      }
    });

    after(() => fs?.unmount());

    test('SIGKILL mid-recall: no reader sees zeros, stale readers get EIO, reads work after the restart', async () => {
      const flag = join(fs.scratch, 'hang');
      writeFileSync(flag, '');
      const d = startDaemon([policy], stateDir, ['--log-level', 'debug'], {
        nodeArgs: ['--import', './test/daemon/fault-hang-tier.ts'],
        env: { TIER_FAULT_HANG: flag },
      });
      try {
        await d.ready;
        const client = (await connectDaemon(stateDir))!;
        const before = await client.status();

        // Several readers on several files, two of them on the same chunk.
        const readers = [
          reader(files[0]!.path, files[0]!.original, 0, 64 * 1024),
          reader(files[0]!.path, files[0]!.original, 4096, 8192),
          reader(files[1]!.path, files[1]!.original, 3 * MiB + 5, 100_000),
          reader(files[2]!.path, files[2]!.original, 8 * MiB, 123),
          reader(files[2]!.path, files[2]!.original, 5 * MiB - 7, 2 * MiB),
        ];
        // Wait until the worker is blocked fetching for at least one of them.
        while (!existsSync(`${flag}.log`) || readFileSync(`${flag}.log`, 'utf8').trim() === '') await sleep(20);
        const inFlight = (await client.status()).recall.inFlight as number;
        assert.ok(inFlight >= 1, 'recalls are in flight when the worker is killed');

        process.kill(before.pid, 'SIGKILL');
        // 'restarting worker' comes once the dead worker can answer nothing more (its stale
        // events are answered by then); it may not have exited yet (worker-process.ts).
        await d.waitLog((l) => l.msg === 'restarting worker' && l.workerPid === before.pid);
        rmSync(flag); // the next worker's tier reads go through
        await d.waitLog((l) => l.msg === 'worker ready' && l.workerPid !== before.pid);

        const results = await Promise.all(readers);
        for (const r of results) {
          assert.equal(r.mismatch, false, 'no reader ever saw wrong bytes (zeros over a hole)');
          assert.equal(r.ok, true, 'every reader gets the right bytes after the restart');
          assert.equal(r.code, 0);
        }
        assert.ok(
          results.some((r) => r.eio > 0),
          'a reader whose recall the dead worker held got EIO',
        );
        const swept = d.logs.find((l) => l.msg === 'answered stale events with EIO');
        assert.ok(swept && (swept.count as number) >= 1, 'the supervisor answered the stale events');

        const after = await (await connectDaemon(stateDir))!.status();
        assert.notEqual(after.pid, before.pid, 'a new worker serves');
        assert.equal(after.supervisorPid, before.supervisorPid, 'same supervisor, same group');
        assert.equal(after.recall.staleAnswered, 0, 'the new worker found nothing left to answer (answered once)');
        for (const f of files) assert.ok(readFileSync(f.path).equals(readFileSync(f.original)), `${f.path} byte-exact`);
      } finally {
        rmSync(flag, { force: true });
        const { code } = await d.stop();
        assert.equal(code, 0, d.stderrText());
      }
    });

    test('a wedged worker (event loop stuck on its own permission event) is killed and replaced', async () => {
      const flag = join(fs.scratch, 'wedge');
      // Fresh released files: the first test recalled the others whole (no marks left).
      const mine: { path: string; original: string }[] = [];
      for (let i = 0; i < 2; i++) {
        const path = join(fs.dir, 'data', `w${i}.bin`);
        const original = join(fs.scratch, `w${i}.orig`);
        const content = pattern(2 * MiB + 1, 200 + i);
        writeFileSync(path, content);
        writeFileSync(original, content);
        await releaseByHand(path, 'slow', tierDir, stateDir);
        mine.push({ path, original });
      }
      const d = startDaemon([policy], stateDir, [], {
        nodeArgs: ['--import', './test/daemon/fault-wedge.ts'],
        env: { TIER_FAULT_WEDGE: flag },
      });
      try {
        await d.ready;
        const before = await (await connectDaemon(stateDir))!.status();
        assert.ok(before.startup.marked >= 2 || (before.startup.filesystems ?? 0) >= 1, 'the two fresh files are marked (or under the filesystem mark)');
        writeFileSync(flag, mine[1]!.path);
        // A reader arriving while the worker is wedged waits, then gets its bytes or EIO.
        while (existsSync(flag)) await sleep(20);
        const r = await reader(mine[0]!.path, mine[0]!.original, MiB, 4096);
        assert.equal(r.mismatch, false);
        assert.equal(r.ok, true);
        const killed = await d.waitLog((l) => l.msg === 'worker stopped answering (event loop stuck): killing it');
        assert.equal(killed.workerPid, before.pid);
        await d.waitLog((l) => l.msg === 'worker exited' && l.workerPid === before.pid);
        await d.waitLog((l) => l.msg === 'worker ready' && l.workerPid !== before.pid);
        const after = await (await connectDaemon(stateDir))!.status();
        assert.notEqual(after.pid, before.pid);
        for (const f of mine) assert.ok(readFileSync(f.path).equals(readFileSync(f.original)), `${f.path} byte-exact`);
      } finally {
        rmSync(flag, { force: true });
        const { code } = await d.stop();
        assert.equal(code, 0, d.stderrText());
      }
    });

    test('SIGTERM while a recall hangs: the tier timeout fails it with EIO, the daemon exits 0', async () => {
      const flag = join(fs.scratch, 'hang-term');
      const path = join(fs.dir, 'data', 'term.bin');
      const original = join(fs.scratch, 'term.orig');
      const content = pattern(3 * MiB, 300);
      writeFileSync(path, content);
      writeFileSync(original, content);
      await releaseByHand(path, 'slow', tierDir, stateDir);
      const short = writePolicy(fs.scratch, join(fs.dir, 'data'), tierDir, undefined, 'timeout 2s', 'short.hsmpolicy');
      writeFileSync(flag, '');
      const d = startDaemon([short], stateDir, [], {
        nodeArgs: ['--import', './test/daemon/fault-hang-tier.ts'],
        env: { TIER_FAULT_HANG: flag },
      });
      try {
        await d.ready;
        const r = reader(path, original, MiB, 4096, 1); // one try: after the stop it would read zeros
        while (!existsSync(`${flag}.log`) || readFileSync(`${flag}.log`, 'utf8').trim() === '') await sleep(20);
        d.proc.kill('SIGTERM');
        const res = await r;
        assert.equal(res.mismatch, false, 'no zeros');
        assert.equal(res.eio, 1, 'the hung recall failed with EIO');
        const { code } = await d.exited;
        assert.equal(code, 0, d.stderrText());
      } finally {
        rmSync(flag, { force: true });
        rmSync(`${flag}.log`, { force: true });
        await d.stop();
      }
    });
  });
}
