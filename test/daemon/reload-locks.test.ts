// The one-daemon-per-filesystem lock follows SIGHUP (issue 12, item 7): a reload whose
// policies gain a fileset on another filesystem locks it, and is refused (logged, the old
// policies keep running) while another daemon serves that filesystem; a filesystem the
// policies no longer name is let go. The worker holds an added lock too (sent over IPC):
// after a supervisor death the orphaned worker still keeps the filesystem. A reader reads a
// released file on the first filesystem all along. Real daemons on an ext4 and an xfs loop mount.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { pattern, releaseByHand, startDaemon, daemonLayout, streamReader, within } from '../helpers/daemon.js';

const MiB = 1024 * 1024;


const alive = (pid: number) => {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');
  } catch {
    return false;
  }
};

describe('SIGHUP and the filesystem locks (ext4 + xfs)', () => {
  let a: LoopFs;
  let b: LoopFs;
  before(() => {
    a = mountLoopFs('ext4');
    b = mountLoopFs('xfs');
  });
  after(() => {
    try {
      a?.unmount();
    } finally {
      b?.unmount();
    }
  });

  test('a reload locks a filesystem it adds (refused while another daemon holds it), releases one it drops; the worker holds them too', async () => {
    const { stateDir, tierDir, data, policy } = daemonLayout(a);
    const dataB = join(b.dir, 'data');
    mkdirSync(dataB);
    const base = readFileSync(policy, 'utf8');
    const withB = base + `fileset more { root "${dataB}" }\npolicy q on more {\n  rule all: size >= 0B -> release to slow\n}\n`;
    const onlyB = base.replace(`root "${data}"`, `root "${dataB}"`);
    const other = join(b.scratch, 'other.hsmpolicy');
    writeFileSync(other, onlyB);

    const path = join(data, 'r.bin');
    const original = join(a.scratch, 'r.orig');
    writeFileSync(path, pattern(6 * MiB, 81));
    writeFileSync(original, readFileSync(path));
    await releaseByHand(path, 'slow', tierDir, stateDir);

    const d = startDaemon([policy], stateDir);
    const procs: ReturnType<typeof startDaemon>[] = [];
    let workerPid = 0;
    let reader: ReturnType<typeof streamReader> | null = null;
    try {
      await d.ready;
      reader = streamReader(path, original, '0,1,2,3,4,5');
      workerPid = (await (await connectDaemon(stateDir))!.status()).pid;

      // Another daemon serves b: a reload adding a fileset on b is refused, naming it.
      const e = startDaemon([other], join(b.scratch, 'state-e'));
      procs.push(e);
      await e.ready;
      writeFileSync(policy, withB);
      d.proc.kill('SIGHUP');
      const refused = await d.waitLog((l) => l.msg === 'reload rejected, the previous policies keep running' && typeof l.reason === 'string');
      assert.match(String(refused.reason), new RegExp(`another tier daemon \\(pid ${e.proc.pid}\\), state dir ${join(b.scratch, 'state-e')}, already serves the filesystem of ${dataB}`));
      assert.equal(d.logs.some((l) => l.msg === 'policies reloaded'), false, 'the old policies keep running');
      assert.equal((await e.stop()).code, 0);

      // b free: the same reload is taken and b is locked.
      d.proc.kill('SIGHUP');
      await d.waitLog((l) => l.msg === 'policies reloaded');
      const locked = await d.waitLog((l) => l.msg === 'filesystem locks follow the reload');
      assert.deepEqual(locked.locked, [dataB]);
      const f = startDaemon([other], join(b.scratch, 'state-f'));
      procs.push(f);
      assert.equal((await f.exited).code, 1, 'b is held by the reloaded daemon');
      assert.match(f.stderrText(), new RegExp(`another tier daemon \\(pid ${d.proc.pid}\\), state dir ${stateDir}, already serves the filesystem of ${dataB}`));

      const r = await reader.stop();
      reader = null;
      assert.equal(r.mismatch, 0, 'no zeros');
      assert.equal(r.eio, 0, 'no EIO across the reloads');
      assert.ok(r.reads > 0);

      // Drop a's fileset: a is let go (a daemon of its own starts there), b stays held.
      writeFileSync(policy, onlyB);
      d.proc.kill('SIGHUP');
      await within('a second reload', 30_000, () => d.logs.filter((l) => l.msg === 'filesystem locks follow the reload').length === 2);
      const released = d.logs.filter((l) => l.msg === 'filesystem locks follow the reload')[1]!;
      assert.equal((released.released as number[]).length, 1);
      const onlyA = join(a.scratch, 'only-a.hsmpolicy');
      writeFileSync(onlyA, base);
      const g = startDaemon([onlyA], join(a.scratch, 'state-g'));
      procs.push(g);
      await g.ready;
      assert.equal((await g.stop()).code, 0);

      // The worker holds the lock it got at the reload: the orphan keeps b.
      d.proc.kill('SIGKILL');
      await d.exited;
      await within('the worker notices', 10_000, () => d.logs.some((l) => l.msg === 'supervisor gone: serving on alone until a new tier daemon takes over'));
      const h = startDaemon([other], join(b.scratch, 'state-h'));
      procs.push(h);
      assert.equal((await h.exited).code, 1);
      assert.match(h.stderrText(), new RegExp(`the worker \\(pid ${workerPid}\\) of a tier daemon whose supervisor died, state dir ${stateDir}, serves the filesystem of ${dataB}`));
    } finally {
      reader?.proc.kill('SIGKILL');
      for (const p of procs) if (p.proc.exitCode === null) await p.stop();
      if (workerPid && alive(workerPid)) {
        process.kill(workerPid, 'SIGTERM');
        await within('the orphan stops', 60_000, () => !alive(workerPid)).catch(() => process.kill(workerPid, 'SIGKILL'));
      }
      if (d.proc.exitCode === null) await d.stop();
    }
  });
});
