// The daemon's life never gives a reader of a released file zeros (issue 12, items 2-4, 7):
// a stop recalls the files readers hold open before the group closes; a killed supervisor
// leaves the worker serving (no close with readers waiting, no D state); a second daemon
// on the same filesystem is refused. ext4 and xfs loop mounts, the real daemon.
//
// FAULT INJECTION: fault-hang-tier.ts holds recalls in flight (LocalTier reads block while
// a flag file exists), so a kill always lands while readers wait.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { REPO, pattern, releaseByHand, startDaemon, daemonLayout, onceReader, streamReader, within } from '../helpers/daemon.js';

const MiB = 1024 * 1024;

interface Held {
  proc: ChildProcess;
  opened: Promise<void>;
  /** Tells it to read now; resolves with its verdict. */
  read(): Promise<{ ok: boolean; zeros: boolean; err: string | null }>;
}

/** A process that opens `file` now and reads it whole when told. */
function heldReader(file: string, original: string): Held {
  const proc = spawn(process.execPath, [join(REPO, 'test/daemon/held-reader.mjs'), file, original], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  let onOpen!: () => void;
  const opened = new Promise<void>((r) => (onOpen = r));
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    if (out.includes('open\n')) onOpen();
  });
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return {
    proc,
    opened,
    async read() {
      proc.stdin!.write('go\n');
      await exited;
      return JSON.parse(out.trim().split('\n').pop()!);
    },
  };
}

/** A reader that preads [off, off+len) once and reports ok / EIO / wrong bytes. */

function procState(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0]!;
  } catch {
    return null;
  }
}

for (const fsType of ['ext4', 'xfs'] as const) {
  describe(`never zeros across the daemon's life (${fsType})`, () => {
    let fs: LoopFs;
    let stateDir: string;
    let tierDir: string;
    let data: string;
    let policy: string;

    async function released(name: string, size: number, seed: number): Promise<{ path: string; original: string }> {
      const path = join(data, name);
      const original = join(fs.scratch, `${name}.orig`);
      const content = pattern(size, seed);
      writeFileSync(path, content);
      writeFileSync(original, content);
      await releaseByHand(path, 'slow', tierDir, stateDir);
      return { path, original };
    }

    before(() => {
      fs = mountLoopFs(fsType);
      ({ stateDir, tierDir, data, policy } = daemonLayout(fs));
    });
    after(() => fs?.unmount());

    test('SIGTERM: files readers hold open are recalled before the group closes', async () => {
      const a = await released('held-a.bin', 3 * MiB + 5, 11);
      const b = await released('held-b.bin', 64 * 1024, 12);
      const d = startDaemon([policy], stateDir);
      const readers: Held[] = [];
      try {
        await d.ready;
        readers.push(heldReader(a.path, a.original), heldReader(b.path, b.original));
        await Promise.all(readers.map((r) => r.opened));
        const { code } = await d.stop();
        assert.equal(code, 0, d.stderrText());
        const done = d.logs.find((l) => l.msg === 'stop: held-open files done');
        assert.ok(done, 'the stop logs what it recalled');
        assert.equal(done.recalled, 2);
        assert.ok(typeof done.budgetMs === 'number', 'the budget is logged');
        for (const r of readers) {
          const v = await r.read(); // after the daemon is gone
          assert.equal(v.zeros, false, 'no held-open reader reads zeros after the stop');
          assert.equal(v.ok, true, `right bytes (${v.err})`);
        }
      } finally {
        for (const r of readers) r.proc.kill('SIGKILL');
        await d.stop();
      }
    });

    test('a second daemon on the same filesystem is refused, naming the running one', async () => {
      await released('two.bin', 64 * 1024, 31);
      const d = startDaemon([policy], stateDir);
      try {
        await d.ready;
        const other = join(fs.scratch, 'state-two');
        const second = startDaemon([policy], other);
        const { code } = await second.exited;
        assert.equal(code, 1, 'refused');
        assert.match(second.stderrText(), new RegExp(`another tier daemon \\(pid ${d.proc.pid}\\), state dir ${stateDir}, already serves the filesystem of`));
        assert.ok(!second.stderrText().includes('    at '), 'no stack trace');
        assert.equal(second.stdout.includes('ready'), false);
      } finally {
        const { code } = await d.stop();
        assert.equal(code, 0, d.stderrText());
      }
    });

    test('--takeover: the new daemon takes the group and its marks; readers during the handover get right bytes, no errors', async () => {
      const f = await released('take.bin', 8 * MiB, 41);
      const flag = join(fs.scratch, 'hang-take');
      const env = { TIER_FAULT_HANG: flag };
      const nodeArgs = ['--import', './test/daemon/fault-hang-tier.ts'];
      const a = startDaemon([policy], stateDir, [], { nodeArgs, env });
      let b: ReturnType<typeof startDaemon> | null = null;
      try {
        await a.ready;
        const before = await (await connectDaemon(stateDir))!.status();
        writeFileSync(flag, '');
        // Held in the old worker's recall when the takeover starts.
        const early = [onceReader(f.path, f.original, 0, 4096, 400), onceReader(f.path, f.original, 2 * MiB, 4096, 400)];
        while (!existsSync(`${flag}.log`) || readFileSync(`${flag}.log`, 'utf8').trim() === '') await sleep(20);
        b = startDaemon([policy], stateDir, ['--takeover'], { nodeArgs, env });
        await a.waitLog((l) => l.msg === 'handing the group over to a new daemon');
        // Arrive while nobody reads the group: they wait in its queue for the new worker.
        const late = [onceReader(f.path, f.original, 5 * MiB, 4096, 400), onceReader(f.path, f.original, 7 * MiB + 1, 9000, 400)];
        await sleep(200);
        rmSync(flag);
        await b.ready;
        for (const r of await Promise.all([...early, ...late])) {
          assert.equal(r.mismatch, false, 'no zeros');
          assert.equal(r.ok, true, 'right bytes');
          assert.equal(r.eio, 0, 'no error during the handover');
        }
        const { code } = await a.exited;
        assert.equal(code, 0, 'the old daemon exits by itself');
        const after = await (await connectDaemon(stateDir))!.status();
        assert.notEqual(after.pid, before.pid);
        assert.equal(after.supervisorPid, b.proc.pid);
        assert.equal(after.startup.inherited, true, 'marks inherited, not placed again');
        // The marks came along: a chunk never read before is recalled by the new daemon.
        const r = await onceReader(f.path, f.original, 4 * MiB - 3, 4096, 400);
        assert.equal(r.ok, true);
        assert.ok(readFileSync(f.path).equals(readFileSync(f.original)));
      } finally {
        rmSync(flag, { force: true });
        rmSync(`${flag}.log`, { force: true });
        await a.stop();
        if (b) assert.equal((await b.stop()).code, 0, b.stderrText());
      }
    });

    test('SIGKILL of the supervisor, then a new tier daemon takes over from the surviving worker', async () => {
      const f = await released('orphan.bin', 4 * MiB, 51);
      const a = startDaemon([policy], stateDir);
      let b: ReturnType<typeof startDaemon> | null = null;
      let workerPid = 0;
      let reader: ReturnType<typeof streamReader> | null = null;
      try {
        await a.ready;
        workerPid = (await (await connectDaemon(stateDir))!.status()).pid;
        // A reader reads all through the supervisor's death and the takeover.
        reader = streamReader(f.path, f.original, '0,1,2');
        a.proc.kill('SIGKILL');
        await a.exited;
        // The orphan logs on the pipe it shares with its dead supervisor: poll the lines, not
        // waitLog, which gives up once the supervisor has exited (the line may come later).
        const orphanLine = (l: Record<string, unknown>) => l.msg === 'supervisor gone: serving on alone until a new tier daemon takes over';
        await within('the orphan says its supervisor is gone', 10_000, () => a.logs.some(orphanLine));
        const gone = a.logs.find(orphanLine)!;
        assert.equal(gone.run, `tier daemon ${policy} --state-dir ${stateDir}`, 'the orphan says what to run');
        b = startDaemon([policy], stateDir); // no flag needed: the orphan is taken over
        await b.ready;
        await within('the orphan leaves', 10_000, () => procState(workerPid) === null || procState(workerPid) === 'Z');
        const streamed = await reader.stop();
        assert.equal(streamed.mismatch, 0, 'no zeros');
        assert.equal(streamed.eio, 0, 'no EIO through the supervisor death and the takeover');
        assert.ok(streamed.reads > 0);
        const r = await onceReader(f.path, f.original, 3 * MiB, 4096, 400);
        assert.equal(r.ok, true, 'served by the new daemon with the old marks');
        assert.equal(r.eio, 0);
        assert.ok(b.logs.some((l) => l.msg === 'taking over the worker of a daemon whose supervisor died'));
      } finally {
        if (reader?.proc.exitCode === null) reader.proc.kill('SIGKILL'); // a failed assertion must not leave it reading
        if (workerPid && procState(workerPid) !== null) process.kill(workerPid, 'SIGKILL');
        if (b) assert.equal((await b.stop()).code, 0, b?.stderrText());
      }
    });

    test('SIGKILL of the supervisor with readers blocked: the worker serves on, no zeros, no hang; SIGTERM ends it', async () => {
      const f = await released('sup.bin', 4 * MiB, 21);
      const h = await released('sup-held.bin', 8 * MiB, 22);
      const flag = join(fs.scratch, 'hang-sup');
      writeFileSync(flag, '');
      const d = startDaemon([policy], stateDir, [], {
        nodeArgs: ['--import', './test/daemon/fault-hang-tier.ts'],
        env: { TIER_FAULT_HANG: flag },
      });
      let workerPid = 0;
      try {
        await d.ready;
        const st = await (await connectDaemon(stateDir))!.status();
        workerPid = st.pid;
        const readers = [onceReader(f.path, f.original, 0, 8192, 400), onceReader(f.path, f.original, 2 * MiB + 3, 100_000, 400)];
        while (!existsSync(`${flag}.log`) || readFileSync(`${flag}.log`, 'utf8').trim() === '') await sleep(20);
        d.proc.kill('SIGKILL');
        await d.exited;
        await within('the worker notices', 5000, () => d.logs.some((l) => l.msg === 'supervisor gone: serving on alone until a new tier daemon takes over'));
        await sleep(300);
        assert.notEqual(procState(workerPid), 'D', 'the worker is not stuck closing the group');
        assert.ok(procState(workerPid) !== null, 'the worker still runs');
        rmSync(flag);
        for (const r of await Promise.all(readers)) {
          assert.equal(r.mismatch, false, 'no reader saw zeros');
          assert.equal(r.ok, true, 'readers get their bytes from the surviving worker');
        }
        // New reads are still served by it.
        const again = await onceReader(f.path, f.original, 3 * MiB, 4096, 400);
        assert.equal(again.ok, true);
        // It still holds the filesystem: a daemon with another state dir is refused.
        const second = startDaemon([policy], join(fs.scratch, 'state-three'));
        assert.equal((await second.exited).code, 1);
        assert.match(second.stderrText(), new RegExp(`the worker \\(pid ${workerPid}\\) of a tier daemon whose supervisor died, state dir ${stateDir}, serves the filesystem of .*start with --state-dir ${stateDir}`));

        // The orphan is the group's last holder: SIGTERM is the daemon's end. A reader
        // blocked in a recall at that moment is served (held open: recalled whole before
        // the group closes), and the close does not hang.
        writeFileSync(flag, '');
        rmSync(`${flag}.log`, { force: true });
        const blocked = onceReader(h.path, h.original, 6 * MiB, 4096, 400);
        while (!existsSync(`${flag}.log`) || readFileSync(`${flag}.log`, 'utf8').trim() === '') await sleep(20);
        process.kill(workerPid, 'SIGTERM');
        await within('the stop looks for held-open files', 10_000, () => d.logs.some((l) => l.msg === 'stop: recalling released files held open by readers'));
        rmSync(flag);
        const r = await blocked;
        assert.equal(r.mismatch, false, 'no zeros');
        assert.equal(r.ok, true, 'the reader blocked at the stop gets its bytes');
        await within('the orphan exits', 30_000, () => procState(workerPid) === null || procState(workerPid) === 'Z');
        const v = readFileSync(h.path);
        assert.ok(v.equals(readFileSync(h.original)), 'the held-open file is whole after the stop');
      } finally {
        rmSync(flag, { force: true });
        rmSync(`${flag}.log`, { force: true });
        if (workerPid && procState(workerPid) !== null) process.kill(workerPid, 'SIGKILL');
      }
    });
  });
}
