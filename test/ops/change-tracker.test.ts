import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChangeTracker, type DirtyFile } from '../../src/changes/change-tracker.js';
import { fsetxattr } from '../../src/kernel/libc.js';
import { encodeRecord, XATTR_STATE, type StateRecord } from '../../src/record/state-record.js';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import type { Logger } from '../../src/log.js';

let fs: LoopFs;
const warnings: string[] = [];
const log: Logger = { debug() {}, info() {}, warn: (m) => void warnings.push(m), error: (m) => void warnings.push(m) };

/** Gives the file a record whose copy matches it as it is now: archived (or released) and clean. */
function archive(path: string, content: string, state: 'archived' | 'released' = 'archived'): void {
  writeFileSync(path, content);
  const st = statSync(path, { bigint: true });
  const rec: StateRecord = {
    v: 1, state, pinned: false, gen: 1,
    copy: { tier: 't', key: 'ab/key', size: Number(st.size), mtimeNs: st.mtimeNs.toString(), sha256: '0', archivedAt: 1, chunk: 4 << 20 },
  };
  const fd = openSync(path, 'r');
  try {
    fsetxattr(fd, XATTR_STATE, encodeRecord(rec), path);
  } finally {
    closeSync(fd);
  }
}

/** Appends from another process: the tracker ignores events its own process causes. */
function appendOther(path: string, text: string): void {
  execFileSync('sh', ['-c', 'printf %s "$1" >> "$2"', 'sh', text, path]);
}

/** Runs `act` under a tracker watching `root`; what it reported dirty once the first report came. */
async function dirtyAfter(root: string, act: () => void): Promise<DirtyFile[]> {
  const seen: DirtyFile[] = [];
  let wake: (() => void) | null = null;
  const arrived = new Promise<void>((r) => (wake = r));
  const tracker = new ChangeTracker({ roots: [root], log, onDirty: (f) => (seen.push(f), wake?.()) });
  tracker.start();
  try {
    assert.deepEqual(tracker.watched, [root]);
    act();
    // Not a speed assertion: the cap only keeps a broken tracker from hanging the suite.
    const cap = setTimeout(() => wake?.(), 10_000);
    await arrived;
    clearTimeout(cap);
    return seen;
  } finally {
    tracker.stop();
  }
}

before(() => {
  fs = mountLoopFs('ext4', 32);
});
after(() => fs.unmount());

describe('change tracking (real fanotify, loop-mounted ext4)', () => {
  test('writing to an archived file under a root reports it dirty; unmanaged, outside and unchanged files are not reported', async () => {
    const root = join(fs.dir, 'managed');
    const other = join(fs.dir, 'other');
    mkdirSync(root);
    mkdirSync(other);
    archive(join(root, 'a.dat'), 'original');
    archive(join(root, 'untouched.dat'), 'same');
    archive(join(other, 'b.dat'), 'outside the root');
    writeFileSync(join(root, 'plain.txt'), 'no record');

    // Events arrive in order: the ones that must be ignored come first.
    const seen = await dirtyAfter(root, () => {
      appendOther(join(root, 'plain.txt'), ' more');
      appendOther(join(other, 'b.dat'), ' changed');
      execFileSync('sh', ['-c', ': >> "$1"', 'sh', join(root, 'untouched.dat')]); // CLOSE_WRITE without a change
      appendOther(join(root, 'a.dat'), ' and a change');
    });
    assert.deepEqual(seen.map((f) => f.path), [join(root, 'a.dat')]);
    const f = seen[0]!;
    assert.equal(f.size, 'original and a change'.length);
    assert.equal(f.record.copy?.size, 'original'.length);
    assert.equal(f.ino, Number(statSync(join(root, 'a.dat')).ino));
  });

  test('open(O_TRUNC) then close, nothing written, on a released file: reported dirty at size 0', async () => {
    const root = join(fs.dir, 'trunc-root');
    mkdirSync(root);
    const file = join(root, 'r.dat');
    // The record says released (the engine would have punched it): O_TRUNC raises no
    // pre-content event, so only the tracker sees it before the next access or scan.
    archive(file, 'released content', 'released');
    const seen = await dirtyAfter(root, () => execFileSync('sh', ['-c', ': > "$1"', 'sh', file])); // open(O_TRUNC), close: no write
    assert.deepEqual(seen.map((f) => f.path), [file]);
    assert.equal(seen[0]!.size, 0);
    assert.equal(seen[0]!.record.state, 'released', 'the record is the recall side\'s to change; the catalog learns now');
  });

  test('a root on the root filesystem is not watched (no filesystem mark on /)', () => {
    const tracker = new ChangeTracker({ roots: [fs.scratch], log, onDirty: () => {} });
    tracker.start();
    tracker.stop();
    assert.deepEqual(tracker.watched, []);
    assert.ok(warnings.some((w) => /root filesystem/.test(w)));
  });
});

describe('change tracking inside DaemonOps', () => {
  test('a write to an archived file turns its catalog row dirty and counts it', async () => {
    const { DaemonOps } = await import('../../src/worker/daemon-ops.js');
    const { Catalog } = await import('../../src/engine/catalog.js');
    const { parsePolicy } = await import('../../src/dsl/index.js');
    const { setTimeout: sleep } = await import('node:timers/promises');
    const root = join(fs.dir, 'ops-root');
    mkdirSync(root);
    const file = join(root, 'doc.txt');
    archive(file, 'v1');
    const st = statSync(file);
    const cat = new Catalog(join(fs.scratch, 'state', 'catalog.db'));
    cat.upsert({ dev: Number(st.dev), ino: Number(st.ino), path: file, state: 'archived', pinned: false, tier: 't', key: 'ab/key', size: 2, sha256: '0', archivedAt: 1, updatedAt: 1 });
    const pf = parsePolicy(`tier t { local "${fs.scratch}/t" }\nfileset f { root "${root}" }\npolicy p on f { rule r: size > 0 -> archive to t }`, 'p').policy!;
    // No reconcile pass: the one at start would find the write first (and count nothing).
    const ops = new DaemonOps({ stateDir: join(fs.scratch, 'state'), policies: [pf], log, catalog: cat, runPolicy: async () => {}, reconcileIntervalMs: 0 });
    try {
      await ops.start();
      appendOther(file, ' then v2');
      // Polls the catalog; the cap only keeps a broken tracker from hanging the suite.
      for (let i = 0; i < 500 && cat.get(Number(st.dev), Number(st.ino))?.state !== 'dirty'; i++) await sleep(20);
      const row = cat.get(Number(st.dev), Number(st.ino))!;
      assert.equal(row.state, 'dirty');
      assert.equal(row.size, 'v1 then v2'.length);
      assert.equal(row.key, 'ab/key', 'the copy it differs from is still named');
      assert.match(await ops.metricsText(), /^tier_files_dirtied_total 1$/m);
    } finally {
      await ops.stop();
      cat.close();
    }
  });

  test('SIGHUP reload: same roots keep the tracker (queued events are not lost); new roots start a new one and a reconcile pass catches up', async () => {
    const { DaemonOps } = await import('../../src/worker/daemon-ops.js');
    const { Catalog } = await import('../../src/engine/catalog.js');
    const { parsePolicy } = await import('../../src/dsl/index.js');
    const { setTimeout: sleep } = await import('node:timers/promises');
    const root = join(fs.dir, 'hup-root');
    const root2 = join(fs.dir, 'hup-root2');
    mkdirSync(root);
    mkdirSync(root2);
    const stateDir = join(fs.scratch, 'state-hup');
    const cat = new Catalog(join(stateDir, 'catalog.db'));
    const files = ['one.txt', 'two.txt'].map((n) => join(root, n));
    for (const f of files) {
      archive(f, 'v1');
      const st = statSync(f);
      cat.upsert({ dev: Number(st.dev), ino: Number(st.ino), path: f, state: 'archived', pinned: false, tier: 't', key: 'ab/key', size: 2, sha256: '0', archivedAt: 1, updatedAt: 1 });
    }
    const policy = (roots: string[]) =>
      parsePolicy(`tier t { local "${fs.scratch}/t" }\nfileset f { ${roots.map((r) => `root "${r}"`).join(' ')} }\npolicy p on f { rule r: size > 0 -> archive to t }`, 'p').policy!;
    const passes: unknown[] = [];
    const hupLog: Logger = { ...log, info: (m, f) => void (m === 'reconcile pass done' && passes.push(f)) };
    const ops = new DaemonOps({ stateDir, policies: [policy([root])], log: hupLog, catalog: cat, runPolicy: async () => {}, reconcileIntervalMs: 0 });
    const state = (f: string) => cat.get(Number(statSync(f).dev), Number(statSync(f).ino))?.state;
    /** The cap only keeps a broken tracker from hanging the suite. */
    const dirtyWithin = async (f: string, ms: number) => {
      for (let i = 0; i < ms / 20 && state(f) !== 'dirty'; i++) await sleep(20);
      return state(f);
    };
    try {
      await ops.start();
      // The write's events wait in the kernel queue (this thread has not yielded) when the reload comes.
      appendOther(files[0]!, ' v2');
      ops.reload([policy([root])]);
      assert.equal(await dirtyWithin(files[0]!, 5000), 'dirty', 'the event queued before the reload was read');
      assert.equal(passes.length, 0, 'seen by the tracker itself: no reconcile pass ran');
      // Another root: a new group. The first group's queued event is lost; the pass finds the change.
      appendOther(files[1]!, ' v2');
      ops.reload([policy([root, root2])]);
      assert.equal(await dirtyWithin(files[1]!, 10_000), 'dirty', 'found by the reconcile pass after the tracker restart');
      // The pass writes the row before it logs its end: wait for the line, not only the row.
      for (let i = 0; i < 250 && passes.length === 0; i++) await sleep(20);
      assert.deepEqual(passes.map((p) => (p as { reason: string }).reason), ['tracker restarted']);
    } finally {
      await ops.stop();
      cat.close();
    }
  });

  test('a queue overflow reaches the onTrackOverflow hook (where the reconcile scan is wired)', async () => {
    const { DaemonOps } = await import('../../src/worker/daemon-ops.js');
    const { Catalog } = await import('../../src/engine/catalog.js');
    const { parsePolicy } = await import('../../src/dsl/index.js');
    const { setTimeout: sleep } = await import('node:timers/promises');
    const root = join(fs.dir, 'flood-root');
    mkdirSync(root);
    writeFileSync(join(root, 'f0'), '');
    const cat = new Catalog(join(fs.scratch, 'state-flood', 'catalog.db'));
    const pf = parsePolicy(`tier t { local "${fs.scratch}/t" }\nfileset f { root "${root}" }\npolicy p on f { rule r: size > 0 -> archive to t }`, 'p').policy!;
    let overflows = 0;
    const ops = new DaemonOps({ stateDir: join(fs.scratch, 'state-flood'), policies: [pf], log, catalog: cat, runPolicy: async () => {}, onTrackOverflow: () => void overflows++ });
    try {
      await ops.start();
      // 20000 renames to new names while this thread is blocked: the 16384-event queue overflows.
      execFileSync(process.execPath, ['-e', `const fs=require('fs');const d=process.argv[1];for(let i=0;i<20000;i++)fs.renameSync(d+'/f'+i,d+'/f'+(i+1));`, root]);
      for (let i = 0; i < 1000 && overflows === 0; i++) await sleep(20);
      assert.ok(overflows > 0, 'the hook was called');
      assert.ok(warnings.some((w) => /queue overflow/.test(w)), 'and it was logged');
    } finally {
      await ops.stop();
      cat.close();
    }
  });
});
