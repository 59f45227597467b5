// The 45 s writer stall (races.test.ts, "every migration gives its lease up at once"),
// reproduced deterministically through a real `tier daemon` on loop-mounted ext4.
// Cause (measured; docs/engine.md "Opening"): the engine read a file through an fd opened
// while the inode carried a mark, so its upload pread raised FAN_PRE_ACCESS under its own
// lease; the daemon's group read could only create the event fd by breaking that lease,
// and the abort waited for the pread: stuck until lease-break-time (45 s), then
// "unlock failed EAGAIN". Files that got there:
//   - a released file written past its end, or grown by truncate, or emptied by an O_TRUNC
//     rewrite: 'dirty' but still marked;
//   - a file whose release was cut short by a worker kill right after the mark: the
//     supervisor keeps the group, so the mark stays on a file whose record never changed.
// Every release here must finish (or give way) within seconds, never wait out the lease.
// And one apply over more such files than the worker has threadpool threads must not hang
// (their opens wait on threads for our own handler, which needs a thread: marked-io.ts).
// Fault injection (named so): fault-hold-put.ts holds an upload mid-way, src/engine/fault.ts
// kills the worker at a named step.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { daemonLayout, pattern, startDaemon, type DaemonProc } from '../helpers/daemon.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { recordOf, sha256 } from './dist-daemon.js';

const MiB = 1024 * 1024;
/** Far below lease-break-time (45 s): a functional deadline, not a speed claim. */
const PROMPT_MS = 15_000;

interface Act {
  path: string;
  status: string;
  message?: string;
}

for (const scheme of ['filesystem', 'inode'] as const) describe(`no release waits out its own lease (dirty-but-marked files, stale marks), ${scheme} marks`, () => {
  let fs: LoopFs;
  let d: DaemonProc;
  let L: ReturnType<typeof daemonLayout>;
  let hold: string;
  let fault: string;

  before(async () => {
    fs = mountLoopFs('ext4', 160);
    L = daemonLayout(fs);
    hold = join(fs.scratch, 'hold-put');
    fault = join(fs.scratch, 'fault');
    d = startDaemon([L.policy], L.stateDir, [], {
      nodeArgs: ['--import', './test/reliability/fault-hold-put.ts'],
      env: { TIER_FAULT_HOLD_PUT: hold, TIER_FAULT_FILE: fault, TIER_MARKS: scheme === 'inode' ? 'inode' : '' },
    });
    await d.ready;
  });
  after(async () => {
    rmSync(hold, { force: true });
    await d?.stop();
    fs?.unmount();
  });

  const unlockFailures = () => d.logs.filter((l) => l.msg === 'unlock failed');

  /** One apply through the daemon: the action per relative path, and how long it took. */
  async function apply(): Promise<{ acts: Map<string, Act>; ms: number }> {
    const acts = new Map<string, Act>();
    const t0 = Date.now();
    await (await connectDaemon(L.stateDir))!.apply({ policyFile: L.policy, dryRun: false }, (e) => {
      const ev = e as Act & { type?: string };
      if (ev.type === 'action') acts.set(ev.path, ev);
    });
    return { acts, ms: Date.now() - t0 };
  }

  /**
   * Applies until every named file is released (a lease broken by the change tracker's own
   * event fd after a fresh write gives 'busy' once in a while); every apply must be prompt.
   */
  async function releaseNow(...names: string[]): Promise<void> {
    const pending = new Set(names);
    for (let i = 0; i < 4 && pending.size > 0; i++) {
      const { acts, ms } = await apply();
      assert.ok(ms < PROMPT_MS, `apply took ${ms} ms: a release waited out its lease`);
      for (const name of pending) {
        const a = acts.get(name);
        assert.ok(a?.status === 'done' || a?.status === 'busy', `${name}: ${JSON.stringify(a)}`);
        if (a.status === 'done') pending.delete(name);
      }
    }
    assert.equal(pending.size, 0, `not released: ${[...pending].join(', ')}`);
  }

  async function released(name: string, content: Buffer): Promise<string> {
    const p = join(L.data, name);
    await writeFile(p, content);
    await releaseNow(name);
    assert.equal(recordOf(p)?.state, 'released');
    return p;
  }

  /** After a release: the record is released with the file's last content, which reads back byte-exact. */
  async function assertReleasedWith(p: string, content: Buffer): Promise<void> {
    const rec = recordOf(p);
    assert.equal(rec?.state, 'released', p);
    // A sparse copy's digest covers its map too (SHA-256(map ‖ data)); the byte-exact read
    // below shows its content.
    if (!rec?.copy?.sparse) assert.equal(rec?.copy?.sha256, sha256(content), `${p}: released with its last content`);
    assert.equal(statSync(p).blocks, 0, `${p}: punched`);
    assert.ok((await readFile(p)).equals(content), `${p} reads back byte-exact`);
  }

  test('released files written past their end, grown, or emptied (dirty, still marked) are released again at once', async () => {
    const a = pattern(3 * MiB + 5, 1);
    const b = pattern(2 * MiB + 77, 2);
    const c = pattern(MiB + 9, 3);
    const pa = await released('append.bin', a);
    const pb = await released('grow.bin', b);
    const pc = await released('empty.bin', c);

    const tail = pattern(1000, 9);
    const fh = await open(pa, 'r+');
    await fh.write(tail, 0, tail.length, a.length); // raises an event: last chunk recalled, record partial
    await fh.close();
    await truncate(pb, b.length + 5000); // the event comes before the growth: record stays released
    await writeFile(pc, Buffer.alloc(0)); // O_TRUNC raises no event at all
    const want = new Map([
      ['append.bin', Buffer.concat([a, tail])],
      ['grow.bin', Buffer.concat([b, Buffer.alloc(5000)])],
      ['empty.bin', Buffer.alloc(0)],
    ]);
    for (const name of want.keys()) assert.match(recordOf(join(L.data, name))?.state ?? '', /released|partial/, `${name}: still marked`);

    await releaseNow(...want.keys());
    assert.deepEqual(unlockFailures(), []);
    for (const [name, content] of want) await assertReleasedWith(join(L.data, name), content);
  });

  test('a writer that opens a dirty-but-marked file mid-upload gets in at once; the next run releases its write', async () => {
    const first = pattern(4 * MiB + 3, 4);
    const p = await released('held.bin', first);
    const add = pattern(50_000, 5);
    let fh = await open(p, 'r+');
    await fh.write(add, 0, add.length, first.length);
    await fh.close();
    const content = Buffer.concat([first, add]);

    writeFileSync(hold, '');
    const run = apply();
    try {
      // The upload has read its first piece under the lease (before the fix: never, 45 s).
      const t0 = Date.now();
      while (!existsSync(`${hold}.log`) || !readFileSync(`${hold}.log`, 'utf8').includes('put ')) {
        assert.ok(Date.now() - t0 < PROMPT_MS, 'the upload read through its fd within seconds');
        await sleep(20);
      }
      const ino = statSync(p).ino;
      assert.match(readFileSync('/proc/locks', 'utf8'), new RegExp(`LEASE .*:${ino} `), 'the engine holds its lease mid-upload');

      const t1 = Date.now();
      fh = await open(p, 'r+');
      const waited = Date.now() - t1;
      const more = pattern(10_000, 6);
      await fh.write(more, 0, more.length, 123_456);
      await fh.close();
      more.copy(content, 123_456);
      assert.ok(waited < PROMPT_MS, `the writer waited ${waited} ms for the lease`);
    } finally {
      rmSync(hold, { force: true });
    }
    const { acts } = await run;
    assert.equal(acts.get('held.bin')?.status, 'busy', JSON.stringify(acts.get('held.bin')));
    assert.match(acts.get('held.bin')?.message ?? '', /lease broken/);

    await releaseNow('held.bin');
    assert.deepEqual(unlockFailures(), []);
    await assertReleasedWith(p, content);
  });

  // Before marked-io.ts this hung for good (all 4 threadpool threads in open(), waiting for
  // our own handler, whose group read queued behind them): a deadline turns that into a failure.
  test('eight dirty-but-marked files in one apply (more than the worker has threadpool threads) are all released', { timeout: 120_000 }, async () => {
    const want = new Map<string, Buffer>();
    for (let i = 0; i < 8; i++) want.set(`many${i}.bin`, pattern(MiB + 1000 * i, 20 + i));
    for (const [name, b] of want) await writeFile(join(L.data, name), b);
    await releaseNow(...want.keys());
    for (const [name, b] of want) {
      const add = pattern(3000, 40);
      const fh = await open(join(L.data, name), 'r+');
      await fh.write(add, 0, add.length, b.length);
      await fh.close();
      want.set(name, Buffer.concat([b, add]));
    }
    await releaseNow(...want.keys());
    assert.deepEqual(unlockFailures(), []);
    for (const [name, content] of want) await assertReleasedWith(join(L.data, name), content);
  });

  test('a mark left by a worker killed right after marking does not stall the next release', async () => {
    // The earlier tests' read-backs left their files archived: released again first, so that
    // the armed apply below marks nothing but this file.
    await apply();
    const content = pattern(2 * MiB + 11, 7);
    const p = join(L.data, 'orphan-mark.bin');
    writeFileSync(p, content);
    await sleep(300); // let the change tracker's close-write event pass (it opens the file)
    const client = (await connectDaemon(L.stateDir))!;
    const before = await client.status();
    writeFileSync(fault, 'after-mark 1'); // SIGKILL of the worker alone: the group and its marks survive
    await apply().catch(() => {}); // the control connection dies with the worker
    await d.waitLog((l) => l.msg === 'worker ready' && l.workerPid !== before.pid);
    assert.equal(existsSync(fault), false, 'the worker died at the fault point');
    assert.equal(recordOf(p), null, 'the record was never written');
    const ino = statSync(p).ino.toString(16);
    const marks = marksOf(before.supervisorPid);
    if (scheme === 'inode') assert.ok(marks.includes(ino), `the supervisor still holds a mark on the file (inode ${ino}; marks ${marks.join(' ')})`);
    else {
      // Under the filesystem mark the mark step only takes ignore marks off (recall/marks.ts):
      // nothing of ours is left on the file that could silence it once released.
      assert.ok(!marks.includes(ino), `no inode or ignore mark of ours is left on the file (inode ${ino}; marks ${marks.join(' ')})`);
      assert.ok(filesystemMarksOf(before.supervisorPid) >= 1, 'the filesystem mark survives the worker in the supervisor');
    }

    await releaseNow('orphan-mark.bin');
    assert.deepEqual(unlockFailures(), []);
    await assertReleasedWith(p, content);
  });
});

/** How many filesystem marks the fanotify groups `pid` holds (fdinfo `fanotify sdev:` lines). */
function filesystemMarksOf(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:[fanotify]') n += [...readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').matchAll(/^fanotify sdev:/gm)].length;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** Inode numbers (hex) of the inode marks of the fanotify groups `pid` holds (fdinfo). */
function marksOf(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== 'anon_inode:[fanotify]') continue;
    for (const m of readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').matchAll(/^fanotify ino:([0-9a-f]+) /gm)) out.push(m[1]!);
  }
  return out;
}
