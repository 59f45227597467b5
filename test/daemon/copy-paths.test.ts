// Every clone and copy path of a released file gives the real bytes (issue 12 item 1),
// with the real daemon (`tier daemon` + `tier apply`) on loop xfs (reflink) and ext4.
// A clone "to end of file" (FICLONE, FICLONERANGE with src_length 0, xfs_io reflink)
// raises FAN_PRE_ACCESS with a range count of 0; read as "nothing", it gave the copy zeros.
// qemu-img finds data with SEEK_DATA (no event): it is in the default whole_file_for.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { applyActions, daemonLayout, pattern, startDaemon, type DaemonProc } from '../helpers/daemon.js';

const MiB = 1024 * 1024;
const stateOf = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE))?.state ?? 'resident';

// FICLONE / FICLONERANGE (struct file_clone_range: s64 src_fd, u64 src_offset, src_length, dest_offset).
const PY_CLONE = `import fcntl, os, struct, sys
src, dst, how = sys.argv[1], sys.argv[2], sys.argv[3]
off, length = int(sys.argv[4]), int(sys.argv[5])
s = os.open(src, os.O_RDONLY)
d = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
if how == 'ficlone':
    fcntl.ioctl(d, 0x40049409, s)
elif how == 'ficlonerange':
    fcntl.ioctl(d, 0x4020940d, struct.pack('qQQQ', s, off, length, 0))
else:
    size = os.fstat(s).st_size
    pos = off
    while pos < size:
        n = os.copy_file_range(s, d, size - pos, pos, pos - off)
        if n == 0: break
        pos += n`;

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 1 << 28 }, (err, _o, stderr) => {
      const c = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof c === 'number' ? c : 1, stderr: stderr.toString() });
    }),
  );
}

for (const type of ['xfs', 'ext4'] as const) {
  describe(`copy paths of released files on ${type}`, () => {
    let fs: LoopFs;
    let d: DaemonProc;
    let data: string;
    let out: string;
    const content = new Map<string, Buffer>();

    // 3 MiB + a tail: several 1 MiB chunks and a partial last block.
    const SIZE = 3 * MiB + 12345;
    const forms: { name: string; how: string; off: number; len: number; xfsOnly: boolean }[] = [
      { name: 'ficlone', how: 'ficlone', off: 0, len: 0, xfsOnly: true },
      { name: 'ficlonerange-eof', how: 'ficlonerange', off: 0, len: 0, xfsOnly: true },
      { name: 'ficlonerange-mid-eof', how: 'ficlonerange', off: MiB, len: 0, xfsOnly: true },
      { name: 'ficlonerange-len', how: 'ficlonerange', off: 0, len: 2 * MiB, xfsOnly: true },
      { name: 'cfr', how: 'cfr', off: 0, len: 0, xfsOnly: false },
      { name: 'cfr-mid', how: 'cfr', off: MiB + 4096, len: 0, xfsOnly: false },
    ];

    before(async () => {
      fs = mountLoopFs(type);
      let policy: string;
      let stateDir: string;
      ({ stateDir, data, policy } = daemonLayout(fs));
      out = join(fs.dir, 'out');
      mkdirSync(out);
      const names = [...forms.map((f) => f.name), 'xfs_io', 'image.raw'];
      for (const [i, n] of names.entries()) {
        // A raw image is whole 512-byte sectors (qemu-img rounds the copy's size up to one).
        const c = pattern(n === 'image.raw' ? 3 * MiB + 12288 : SIZE, 40 + i);
        if (n === 'image.raw') c.fill(0, MiB, 2 * MiB); // a zero run inside the image, as disk images have
        writeFileSync(join(data, n), c);
        content.set(n, c);
      }
      d = startDaemon([policy], stateDir);
      await d.ready;
      const acts = await applyActions(policy, stateDir);
      for (const n of names) {
        assert.equal(acts.get(n)?.status, 'done', `${n}: ${JSON.stringify(acts.get(n))}`);
        assert.equal(stateOf(join(data, n)), 'released');
        assert.ok(statSync(join(data, n)).blocks * 512 <= 4096, `${n}: punched`);
      }
    });
    after(async () => {
      try {
        if (d) assert.equal((await d.stop()).code, 0);
      } finally {
        fs?.unmount();
      }
    });

    for (const f of forms) {
      test(`${f.how} off ${f.off} len ${f.len || 'to EOF'}: the copy holds the real bytes`, { skip: f.xfsOnly && type !== 'xfs' }, async () => {
        const src = join(data, f.name);
        const dst = join(out, f.name);
        const r = await run('python3', ['-c', PY_CLONE, src, dst, f.how, String(f.off), String(f.len)]);
        assert.equal(r.code, 0, r.stderr);
        const want = content.get(f.name)!.subarray(f.off, f.len ? f.off + f.len : undefined);
        const got = readFileSync(dst);
        assert.equal(got.length, want.length);
        assert.ok(got.equals(want), `${f.name}: copy differs from the original (zeros where data was?)`);
      });
    }

    test('xfs_io -c "reflink SRC": the copy holds the real bytes', { skip: type !== 'xfs' }, async () => {
      const dst = join(out, 'xfs_io');
      const r = await run('xfs_io', ['-f', '-c', `reflink ${join(data, 'xfs_io')}`, dst]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(readFileSync(dst).equals(content.get('xfs_io')!));
    });

    test('qemu-img convert of a released raw image copies its data, not holes', async () => {
      const dst = join(out, 'image.raw');
      const r = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', join(data, 'image.raw'), dst]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(readFileSync(dst).equals(content.get('image.raw')!));
      assert.equal(stateOf(join(data, 'image.raw')), 'archived', 'recalled whole at its open');
    });
  });
}
