// Change tracking end to end with the real daemon and CLI: releases by `tier apply` dirty
// nothing (no self-inflicted events); a writer that keeps a released file open makes it
// dirty before it closes; renames of a file and of a directory move the catalog rows and
// the files still read byte-exact; a deleted released file is marked deleted in the
// catalog, `tier report` counts it, and `tier gc` removes its object and chunk sums after
// keep_deleted counted from the deletion, not before, while renamed files keep theirs.
// ext4 (-I 512) in full, xfs shorter.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { Catalog, type CatalogRow } from '../../src/engine/catalog.js';
import { pattern, runCli, sh, startDaemon, within, type DaemonProc } from '../helpers/daemon.js';

const KEEP_S = 10;
const rec = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

function setup(fs: LoopFs, names: string[]): { data: string; state: string; tierDir: string; policy: string; content: Map<string, Buffer> } {
  const data = join(fs.dir, 'data');
  const state = join(fs.scratch, 'state');
  const tierDir = join(fs.scratch, 'tier');
  mkdirSync(join(data, 'dir'), { recursive: true });
  mkdirSync(tierDir);
  const content = new Map<string, Buffer>();
  names.forEach((n, i) => {
    const b = pattern(300 * 1024 + i * 4096, 40 + i);
    writeFileSync(join(data, n), b);
    content.set(n, b);
  });
  const policy = join(fs.scratch, 'track.hsmpolicy');
  writeFileSync(
    policy,
    // 64 KiB chunks: each ~300 KiB file has five, so its copy has a sums object (copies up to 256 KiB have none).
    `tier slow { local "${tierDir}" chunk 64KiB }\nfileset data { root "${data}" }\n` +
      `policy p on data {\n  keep_deleted ${KEEP_S}s\n  rule all: size > 0B -> release to slow\n}\n`,
  );
  return { data, state, tierDir, policy, content };
}

async function applyAll(policy: string, state: string, files: string[]): Promise<void> {
  const r = await runCli(['apply', policy, '--state-dir', state]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const f of files) assert.equal(rec(f)?.state, 'released', f);
}

const rowsOf = (cat: Catalog): CatalogRow[] => [...cat.all()];

describe('change tracking in the daemon (ext4)', () => {
  let fs: LoopFs | undefined;
  let d: DaemonProc | undefined;
  after(async () => {
    await d?.stop();
    fs?.unmount();
  });

  test('apply dirties nothing; open writer, renames, delete tracked; gc honours keep_deleted from the deletion', async (t) => {
    fs = mountLoopFs('ext4', 64);
    const names = ['doomed.bin', 'keep.bin', 'ren.bin', 'dir/sub.bin', 'log.txt'];
    const { data, state, tierDir, policy, content } = setup(fs, names);
    const p = (n: string) => join(data, n);
    d = startDaemon([policy], state);
    await d.ready;
    await applyAll(policy, state, names.map(p));
    const cat = new Catalog(join(state, 'catalog.db'));
    let doomedKey = '';
    let deletedAt = 0;
    try {
      // The engine's own punch, xattr and futimens raise events from the worker: ignored.
      await sleep(1000);
      assert.deepEqual(rowsOf(cat).map((r) => r.state), names.map(() => 'released'));
      assert.ok(!d.logs.some((l) => l.msg === 'archived file changed: dirty'), 'no self-inflicted dirty');

      // A writer holding the file open: dirty before it closes.
      const logIno = statSync(p('log.txt')).ino;
      const writer = spawn(process.execPath, ['-e', `const fs=require('fs');const fd=fs.openSync(process.argv[1],'a');fs.writeSync(fd,'appended\\n');process.stdin.on('data',()=>{});process.stdin.on('end',()=>fs.closeSync(fd));`, p('log.txt')], { stdio: ['pipe', 'ignore', 'inherit'] });
      try {
        const ms = await within('dirty while open', 5000, () => cat.get(statSync(p('log.txt')).dev, logIno)?.state === 'dirty');
        t.diagnostic(`open writer -> dirty row: ${ms} ms`);
        assert.equal(writer.exitCode, null, 'the writer has not closed the file yet');
        assert.equal(cat.get(statSync(p('log.txt')).dev, logIno)!.size, content.get('log.txt')!.length + 'appended\n'.length);
      } finally {
        writer.stdin!.end();
        await new Promise((r) => writer.on('exit', r));
      }

      // Renames: a file, then the directory holding one.
      const renIno = statSync(p('ren.bin')).ino;
      const subIno = statSync(p('dir/sub.bin')).ino;
      const dev = statSync(data).dev;
      await sh('mv "$1" "$2" && mv "$3" "$4"', p('ren.bin'), p('ren2.bin'), p('dir'), p('dir2'));
      const rms = await within('rows follow the renames', 5000, () => cat.get(dev, renIno)?.path === p('ren2.bin') && cat.get(dev, subIno)?.path === p('dir2/sub.bin'));
      t.diagnostic(`file + directory rename -> rows moved: ${rms} ms`);
      assert.ok(readFileSync(p('ren2.bin')).equals(content.get('ren.bin')!), 'renamed file reads byte-exact');
      assert.ok(readFileSync(p('dir2/sub.bin')).equals(content.get('dir/sub.bin')!), 'file in renamed dir reads byte-exact');

      // Delete a released file.
      const doomedIno = statSync(p('doomed.bin')).ino;
      doomedKey = rec(p('doomed.bin'))!.copy!.key;
      assert.ok(existsSync(join(tierDir, doomedKey)) && existsSync(join(tierDir, `${doomedKey}.sums`)), 'object and its chunk sums');
      const t0 = Date.now();
      await sh('rm "$1"', p('doomed.bin'));
      const dms = await within('row marked deleted', 5000, () => (cat.get(dev, doomedIno)?.deletedAt ?? null) !== null);
      t.diagnostic(`delete -> row deleted: ${dms} ms`);
      deletedAt = cat.get(dev, doomedIno)!.deletedAt!;
      assert.ok(deletedAt >= t0 - 1000 && deletedAt <= Date.now());
    } finally {
      cat.close();
    }
    const s0 = Date.now();
    assert.equal((await d.stop()).code, 0);
    t.diagnostic(`daemon stop took ${Date.now() - s0} ms`);
    d = undefined;

    // gc before keep_deleted has passed since the deletion: kept, and recorded as first seen
    // now. Run it well after the deletion, so that the later run can only collect the object
    // by counting from the deletion.
    await sleep(Math.max(0, deletedAt + 4000 - Date.now()));
    const g0 = Date.now();
    const early = await runCli(['gc', '--config', policy, '--state-dir', state, '--json']);
    assert.equal(early.code, 0, early.stderr);
    t.diagnostic(`tier gc took ${Date.now() - g0} ms`);
    assert.ok(Date.now() - deletedAt < KEEP_S * 1000, 'this gc ran before keep_deleted had passed (else the machine is too slow for this check)');
    const orphan = (JSON.parse(early.stdout).tiers[0].orphans as { key: string; fate: string }[]).find((o) => o.key === doomedKey);
    assert.equal(orphan?.fate, 'kept: retention');
    assert.ok(existsSync(join(tierDir, doomedKey)), 'not before the retention');
    const r0 = Date.now();
    const rep = await runCli(['report', '--json', '--state-dir', state]);
    t.diagnostic(`tier report took ${Date.now() - r0} ms`);
    assert.equal(rep.code, 0, rep.stderr);
    const j = JSON.parse(rep.stdout);
    assert.deepEqual(j.deleted, { files: 1, bytes: content.get('doomed.bin')!.length });
    assert.equal(j.totals.files, names.length - 1, 'a deleted file is not counted as managed');
    const text = await runCli(['report', '--state-dir', state]);
    assert.match(text.stdout, /deleted, awaiting gc: 1 files/);
    // Past keep_deleted from the deletion (but not from gc's own first sighting): collected.
    await sleep(Math.max(0, deletedAt + KEEP_S * 1000 + 300 - Date.now()));
    const late = await runCli(['gc', '--config', policy, '--state-dir', state, '--json']);
    assert.equal(late.code, 0, late.stderr);
    const r = JSON.parse(late.stdout);
    assert.equal(r.deleted, 1, 'the object (its .sums go with it)');
    assert.ok(!existsSync(join(tierDir, doomedKey)) && !existsSync(join(tierDir, `${doomedKey}.sums`)));
    for (const n of ['keep.bin', 'ren2.bin', 'dir2/sub.bin']) assert.ok(existsSync(join(tierDir, rec(join(data, n))!.copy!.key)), `${n} keeps its object`);
    const rep2 = JSON.parse((await runCli(['report', '--json', '--state-dir', state])).stdout);
    assert.deepEqual(rep2.deleted, { files: 0, bytes: 0 }, 'the collected file\'s row is gone');
  });
});

describe('change tracking in the daemon (xfs)', () => {
  let fs: LoopFs | undefined;
  let d: DaemonProc | undefined;
  after(async () => {
    await d?.stop();
    fs?.unmount();
  });

  test('delete and rename of released files reach the catalog', async () => {
    fs = mountLoopFs('xfs');
    const names = ['a.bin', 'b.bin'];
    const { data, state, policy } = setup(fs, names);
    const p = (n: string) => join(data, n);
    d = startDaemon([policy], state);
    await d.ready;
    await applyAll(policy, state, names.map(p));
    const dev = statSync(data).dev;
    const [aIno, bIno] = names.map((n) => statSync(p(n)).ino) as [number, number];
    const cat = new Catalog(join(state, 'catalog.db'));
    try {
      await sh('rm "$1" && mv "$2" "$3"', p('a.bin'), p('b.bin'), p('dir/b2.bin'));
      await within('delete and rename tracked', 5000, () => (cat.get(dev, aIno)?.deletedAt ?? null) !== null && cat.get(dev, bIno)?.path === p('dir/b2.bin'));
      assert.equal(cat.get(dev, bIno)!.deletedAt, null);
      assert.equal(cat.get(dev, bIno)!.state, 'released');
    } finally {
      cat.close();
    }
    assert.equal((await d.stop()).code, 0);
    d = undefined;
  });
});
