// Threadpool starvation between reconcile's marking and the engine (src/reconcile/reconcile-mark.ts,
// src/engine/marked-io.ts), through a real `tier daemon` on loop-mounted ext4 (-I 512).
// An open of a marked file waits on a libuv threadpool thread until our own recall service
// answers it, and the service needs a thread too (its group read, tier reads, fdatasync).
// The worker runs with UV_THREADPOOL_SIZE=2 (one marked-io slot). Reconcile finds a
// released file whose catalog row lost its path and opens it to mark it; the opener
// (its comm: "node" under Node 20, "MainThread" under Node 24, which names its threads) is in
// `whole_file_for`, so the answer waits for a whole-file recall slowed
// by a tpslimit: that open holds a thread for seconds. Meanwhile an apply re-releases a
// partial file, whose open also waits for the service. Were the reconcile open not counted
// as marked I/O, both threads would wait for the service and the service for a thread:
// hung until the tier timeout (300 s here) fails the recall. A generous deadline turns
// that into a failure.
// Fault injection (named so): the catalog row's path is rewritten by hand.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { cli, daemonLayout, pattern, startDaemon, type DaemonProc } from '../helpers/daemon.js';
import { openCatalog } from '../../src/engine/catalog.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import type { ChildProcess } from 'node:child_process';

const MiB = 1024 * 1024;
/** This Node's /proc/PID/comm, the CLI's too (same binary): Node 24 names its main thread MainThread. */
const NODE_COMM = readFileSync('/proc/self/comm', 'utf8').trim();
/** A functional deadline, far above the few seconds the throttled recall takes. */
const DEADLINE_MS = 60_000;
const record = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

/** Runs the CLI; resolves with its exit and output, or null when the deadline passed first. */
async function within(p: ChildProcess, ms: number): Promise<{ code: number | null; out: string } | null> {
  let out = '';
  p.stdout!.on('data', (c) => (out += c));
  p.stderr!.on('data', (c) => (out += c));
  const done = new Promise<{ code: number | null; out: string }>((r) => p.on('close', (code) => r({ code, out })));
  return Promise.race([done, sleep(ms, null, { ref: false })]);
}

/** Pids of the children of `pid` (the supervisor's worker). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('reconcile marking a marked file while an apply opens another does not starve the worker threadpool (ext4)', () => {
  let fs: LoopFs;
  let L: ReturnType<typeof daemonLayout>;
  let d: DaemonProc;
  let policy: string;
  const started: ChildProcess[] = [];

  before(async () => {
    fs = mountLoopFs('ext4');
    L = daemonLayout(fs);
    policy = join(fs.scratch, 'pool.hsmpolicy');
    writeFileSync(
      policy,
      `tier slow { local "${L.tierDir}" chunk 1MiB readahead 1MiB tpslimit 2 timeout 300s }
fileset data { root "${L.data}" }
recall { whole_file_for "${NODE_COMM}" }
policy p on data {
  rule all: size >= 0B -> release to slow
}
`,
    );
    d = startDaemon([policy], L.stateDir, ['--reconcile-interval', '0'], { env: { UV_THREADPOOL_SIZE: '2' } });
    await d.ready;
  });
  after(async () => {
    // A hung worker ignores SIGTERM's drain: kill what this test started, by pid.
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    const sup = d?.proc.pid;
    const stopped = d ? await Promise.race([d.stop(), sleep(10_000).then(() => null)]) : 'none';
    if (stopped === null && sup) {
      for (const w of childrenOf(sup)) process.kill(w, 'SIGKILL');
      d.proc.kill('SIGKILL');
      await d.exited;
    }
    fs?.unmount();
  });

  test('both finish: the found file is recalled and reads byte-exact, the partial file is released again', { timeout: 180_000 }, async () => {
    const found = join(L.data, 'found.bin');
    const part = join(L.data, 'part.bin');
    const foundBytes = pattern(8 * MiB + 11, 1);
    const partBytes = pattern(2 * MiB + 22, 2);
    writeFileSync(found, foundBytes);
    writeFileSync(part, partBytes);
    const first = await within(cli(['apply', policy, '--state-dir', L.stateDir]), DEADLINE_MS);
    assert.equal(first?.code, 0, first?.out);
    assert.equal(record(found)?.state, 'released');
    assert.equal(record(part)?.state, 'released');
    // One chunk of part.bin back (dd is not in whole_file_for): partial.
    execFileSync('dd', [`if=${part}`, 'of=/dev/null', 'bs=4096', 'skip=300', 'count=1'], { stdio: 'ignore' });
    assert.equal(record(part)?.state, 'partial');

    // FAULT INJECTION: found.bin's catalog row points elsewhere, so reconcile treats it as
    // a released file the catalog did not list, and opens it to mark it.
    const cat = openCatalog(join(L.stateDir, 'catalog.db'));
    try {
      const st = statSync(found);
      assert.ok(cat.renamePath(Number(st.dev), Number(st.ino), join(L.data, 'elsewhere.bin')));
    } finally {
      cat.close();
    }

    const rec = cli(['reconcile', '--state-dir', L.stateDir]);
    started.push(rec);
    const reconciled = within(rec, DEADLINE_MS);
    // Reconcile's open is under way: its answer waits for the throttled whole-file recall.
    for (const t0 = Date.now(); record(found)?.state !== 'partial'; await sleep(5)) {
      assert.ok(Date.now() - t0 < DEADLINE_MS, `reconcile never opened found.bin:\n${d.stderrText()}`);
    }
    const app = cli(['apply', policy, '--state-dir', L.stateDir, '--json']);
    started.push(app);
    const applied = await within(app, DEADLINE_MS);
    const rr = await reconciled;
    assert.ok(applied, 'the apply hung: the worker threadpool starved');
    assert.ok(rr, 'reconcile hung: the worker threadpool starved');
    assert.equal(rr.code, 0, rr.out);
    assert.equal(applied.code, 0, applied.out);
    const act = applied.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((e) => e.type === 'action' && e.path === 'part.bin');
    assert.equal(act?.status, 'done', JSON.stringify(act));
    const failed = d.logs.filter((l) => l.msg === 'reconcile: marking a released file failed' || l.level === 'error');
    assert.deepEqual(failed, [], 'no open failed, no recall failed');
    assert.equal(record(part)?.state, 'released');
    assert.equal(statSync(part).blocks, 0);
    assert.ok((await readFile(found)).equals(foundBytes), 'found.bin reads byte-exact');
    assert.ok((await readFile(part)).equals(partBytes), 'part.bin reads byte-exact');
  });
});
