import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, statSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { scanFileset, scanRoot } from '../../src/engine/scan.js';
import { fsetxattr } from '../../src/kernel/libc.js';
import { encodeRecord, XATTR_STATE, type StateRecord } from '../../src/record/state-record.js';
import type { FileFacts } from '../../src/engine/facts.js';

async function collect(it: AsyncIterable<FileFacts>): Promise<Map<string, FileFacts>> {
  const m = new Map<string, FileFacts>();
  for await (const f of it) m.set(f.path, f);
  return m;
}

function mkfifo(p: string): void {
  execFileSync('mkfifo', [p]);
}

describe('scan on a loop-mounted ext4', () => {
  let fs: LoopFs;
  let other: LoopFs;
  let bind = '';
  before(() => {
    fs = mountLoopFs('ext4', 64);
    other = mountLoopFs('ext4', 32);
    const d = fs.dir;
    mkdirSync(join(d, 'a/b/c'), { recursive: true });
    writeFileSync(join(d, 'top.txt'), 'top');
    writeFileSync(join(d, 'a/b/c/deep.bin'), Buffer.alloc(5000, 1));
    writeFileSync(join(d, '.dotfile'), 'dot');
    writeFileSync(join(d, 'a/with space.txt'), 's');
    writeFileSync(join(d, 'a/new\nline'), 'n');
    writeFileSync(join(d, 'a/ünïcødé-日本.txt'), 'u');
    mkdirSync(join(d, 'a/.cache/x'), { recursive: true });
    writeFileSync(join(d, 'a/.cache/x/cached'), 'c');
    writeFileSync(join(d, 'a/dl.part'), 'p');
    // A symlink to a file and one to a directory outside the fileset: neither followed.
    writeFileSync(join(fs.scratch, 'outside.txt'), 'o');
    symlinkSync(join(fs.scratch, 'outside.txt'), join(d, 'link-file'));
    symlinkSync(fs.scratch, join(d, 'link-dir'));
    mkfifo(join(d, 'fifo'));
    // Another filesystem mounted inside the root: skipped.
    writeFileSync(join(other.dir, 'elsewhere.txt'), 'e');
    bind = join(d, 'mnt');
    mkdirSync(bind);
    execFileSync('mount', ['--bind', other.dir, bind]);
  });
  after(() => {
    if (bind) execFileSync('umount', [bind]);
    other?.unmount();
    fs?.unmount();
  });

  test('regular files only, dotfiles and odd names included, symlinks and other filesystems skipped', async () => {
    const m = await collect(scanRoot(fs.dir, [], []));
    assert.deepEqual([...m.keys()].sort(), [
      '.dotfile',
      'a/.cache/x/cached',
      'a/b/c/deep.bin',
      'a/dl.part',
      'a/new\nline',
      'a/with space.txt',
      'a/ünïcødé-日本.txt',
      'top.txt',
    ].sort());
    const deep = m.get('a/b/c/deep.bin')!;
    assert.equal(deep.name, 'deep.bin');
    assert.equal(deep.size, 5000);
    assert.equal(deep.absPath, join(fs.dir, 'a/b/c/deep.bin'));
    assert.equal(deep.owner, 'root');
    assert.equal(deep.state, 'resident');
    assert.equal(deep.mtimeNs, statSync(deep.absPath, { bigint: true }).mtimeNs.toString());
    assert.ok(deep.blocks >= 8);
  });

  test('include and exclude globs are relative to the root; excluded directories are pruned', async () => {
    const m = await collect(
      scanFileset({ name: 'f', span: { file: 'x', line: 1, col: 1, length: 1 }, roots: [fs.dir], include: ['a/**'], exclude: ['**/.cache/**', '**/*.part'] }),
    );
    assert.deepEqual([...m.keys()].sort(), ['a/b/c/deep.bin', 'a/new\nline', 'a/with space.txt', 'a/ünïcødé-日本.txt'].sort());
  });

  test('the record decides the state; a changed file is dirty', async () => {
    const p = join(fs.dir, 'top.txt');
    const st = statSync(p, { bigint: true });
    const rec: StateRecord = {
      v: 1,
      state: 'archived',
      pinned: true,
      gen: 1,
      copy: { tier: 't', key: 'k', size: Number(st.size), mtimeNs: st.mtimeNs.toString(), sha256: 's', archivedAt: 1, chunk: 4096 },
    };
    const fd = openSync(p, 'r');
    try {
      fsetxattr(fd, XATTR_STATE, encodeRecord(rec));
    } finally {
      closeSync(fd);
    }
    let f = (await collect(scanRoot(fs.dir, ['top.txt'], []))).get('top.txt')!;
    assert.equal(f.state, 'archived');
    assert.equal(f.pinned, true);
    assert.equal(f.record?.copy?.key, 'k');
    appendFileSync(p, 'more');
    f = (await collect(scanRoot(fs.dir, ['top.txt'], []))).get('top.txt')!;
    assert.equal(f.state, 'dirty');
  });

  test('batches: thousands of files and symlinks in one directory, every record decoded; a scan left half-way closes its fds', async () => {
    const big = join(fs.dir, 'big');
    mkdirSync(big);
    for (let i = 0; i < 2500; i++) writeFileSync(join(big, `f${i}`), String(i));
    for (let i = 0; i < 5000; i++) symlinkSync('f0', join(big, `l${i}`));
    const rec: StateRecord = { v: 1, state: 'resident', pinned: true, gen: 0 };
    for (const i of [0, 1023, 1024, 2499]) {
      const fd = openSync(join(big, `f${i}`), 'r');
      try {
        fsetxattr(fd, XATTR_STATE, encodeRecord(rec));
      } finally {
        closeSync(fd);
      }
    }
    const m = await collect(scanRoot(big, [], []));
    assert.equal(m.size, 2500);
    assert.deepEqual([...m.values()].filter((f) => f.pinned).map((f) => f.name).sort(), ['f0', 'f1023', 'f1024', 'f2499']);
    assert.equal(m.get('f1500')!.size, 4);
    assert.equal(m.get('f1500')!.absPath, join(big, 'f1500'));

    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    for await (const f of scanRoot(big, [], [])) if (f) break;
    assert.equal(fds(), before);
  });

  test('walk threads split the files by directory: each file once, whatever the number of threads', async () => {
    const tree = join(fs.dir, 'parts');
    const want: string[] = [];
    for (let d = 0; d < 40; d++) {
      const dir = join(tree, `g${d % 3}`, `d${d}`);
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < 30; i++) {
        writeFileSync(join(dir, `f${i}`), String(i));
        want.push(`g${d % 3}/d${d}/f${i}`);
      }
    }
    writeFileSync(join(tree, 'at-root'), 'r');
    want.push('at-root');
    want.sort();
    for (const threads of [1, 2, 3]) {
      const seen: string[] = [];
      for await (const f of scanRoot(tree, [], [], { threads })) seen.push(f.path);
      assert.deepEqual(seen.sort(), want, `${threads} threads`);
    }
  });

  test('a root that is a symlink is refused, not followed', async () => {
    await assert.rejects(collect(scanRoot(join(fs.dir, 'link-dir'), [], [])), /not a directory/);
  });
});
