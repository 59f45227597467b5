// Full local filesystem during recall (issue 7): the recall cannot write the fetched bytes.
// The reader must get an error (EIO or ENOSPC), never zeros; nothing is lost: once space is
// freed the same file reads back byte-exact and its record still points at its copy.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, unlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { fillFilesystem, mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { pattern, releaseByHand, writePolicy } from '../helpers/daemon.js';
import { ensureDist, recordOf, startDistDaemon, type Daemon } from './dist-daemon.js';

const MiB = 1024 * 1024;

/** Reads the whole file; returns the error code of the first failing read, or the bytes. */
async function readAll(path: string, size: number): Promise<{ code?: string; data?: Buffer }> {
  let fh;
  try {
    fh = await open(path, 'r');
    const buf = Buffer.alloc(size);
    let n = 0;
    while (n < size) {
      const { bytesRead } = await fh.read(buf, n, Math.min(256 * 1024, size - n), n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return { data: buf.subarray(0, n) };
  } catch (e) {
    return { code: (e as NodeJS.ErrnoException).code };
  } finally {
    await fh?.close();
  }
}


for (const type of ['ext4', 'xfs'] as const) {
  describe(`ENOSPC during recall (${type})`, () => {
    let fs: LoopFs;
    let daemon: Daemon;
    let path: string;
    let content: Buffer;

    before(async () => {
      ensureDist();
      fs = mountLoopFs(type);
      const data = join(fs.dir, 'data');
      const tierDir = join(fs.scratch, 'tier');
      const stateDir = join(fs.scratch, 'state');
      mkdirSync(data);
      mkdirSync(tierDir);
      path = join(data, 'big.bin');
      content = pattern(9 * MiB + 5, 77);
      writeFileSync(path, content);
      await releaseByHand(path, 'slow', tierDir, stateDir);
      daemon = startDistDaemon(writePolicy(fs.scratch, data, tierDir), stateDir);
      await daemon.ready;
    });
    after(async () => {
      await daemon?.stop();
      fs?.unmount();
    });

    test('the reader gets an error, not zeros; after freeing space the file reads back byte-exact', async () => {
      const fillers = fillFilesystem(fs.dir);
      const r = await readAll(path, content.length);
      assert.equal(r.data, undefined, 'no bytes are returned while the recall cannot write');
      assert.ok(r.code === 'EIO' || r.code === 'ENOSPC', `reader error: ${r.code}`);
      const rec = recordOf(path);
      assert.ok(rec?.state === 'released' || rec?.state === 'partial', `record kept: ${rec?.state}`);
      assert.ok(rec.copy, 'the copy is still referenced');

      for (const f of fillers) unlinkSync(f);
      const again = await readAll(path, content.length);
      assert.equal(again.code, undefined);
      assert.ok(again.data!.equals(content), 'byte-exact once space is back');
    });
  });
}
