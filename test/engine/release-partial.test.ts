// Re-releasing a partially recalled file (src/engine/release-partial.ts), end to end
// through a real `tier daemon` + `tier apply` on loop-mounted ext4 and xfs: a file read
// in part is released again with its copy (no upload, same key, every block freed) and
// reads back byte-exact; a file held open is busy and keeps its bytes; a file written
// after its partial recall is never released with the stale copy.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { applyActions, readAt, runCli, startDaemon, type ApplyAction, type DaemonProc } from '../helpers/daemon.js';

const MiB = 1024 * 1024;
const SIZE = 5 * MiB + 4321; // six 1 MiB chunks, the last one short
const record = (p: string) => decodeRecord(lgetxattr(p, XATTR_STATE));

// Async: the daemon answers recalls of files this test reads, so never block the loop.
const tier = (...args: string[]) => runCli(args).then((r) => ({ code: r.code, out: r.stdout, err: r.stderr }));

/** Releases files older than 30 days to a local tier with 1 MiB chunks. */
function writePolicy(policy: string, tierDir: string, data: string): void {
  writeFileSync(
    policy,
    `tier nas { local "${tierDir}" chunk 1MiB }
fileset d { root "${data}" }
policy p on d {
  rule old: last_mod > 30d -> release to nas
}
`,
  );
}

/** `tier daemon` in the foreground (test/helpers/daemon.ts); resolves once it printed `ready`. */
async function startReady(policy: string, state: string, env: Record<string, string> = {}): Promise<DaemonProc> {
  const d = startDaemon([policy], state, [], { env });
  await d.ready;
  return d;
}

const pattern = (n: number, salt: number) => {
  const b = Buffer.alloc(n);
  for (let j = 0; j < n; j++) b[j] = (j * 31 + (j >> 12) + salt) & 0xff;
  return b;
};

for (const type of ['ext4', 'xfs'] as const) {
  describe(`re-releasing partially recalled files through tier daemon on ${type}`, () => {
    let fs: LoopFs;
    let daemon: DaemonProc | undefined;
    let policy: string;
    let state: string;
    let data: string;
    const content = new Map<string, Buffer>();
    const path = (name: string) => join(data, name);
    before(async () => {
      fs = mountLoopFs(type);
      data = join(fs.dir, 'data');
      state = join(fs.scratch, 'state');
      mkdirSync(data);
      const old = new Date(Date.now() - 60 * 86_400_000);
      for (const [i, name] of ['movie.bin', 'held.bin', 'written.bin'].entries()) {
        const b = pattern(SIZE, i);
        writeFileSync(path(name), b);
        utimesSync(path(name), old, old);
        content.set(name, b);
      }
      policy = join(fs.scratch, 'p.hsmpolicy');
      writePolicy(policy, join(fs.scratch, 'tier'), data);
      daemon = await startReady(policy, state);
      const acts = await applyActions(policy, state);
      for (const name of content.keys()) assert.equal(acts.get(name)?.status, 'done', JSON.stringify(acts.get(name)));
      // Each file: one chunk read back (the second), so each is partial.
      for (const [name, b] of content) {
        assert.ok((await readAt(path(name), 1.5 * MiB, 10)).equals(b.subarray(1.5 * MiB, 1.5 * MiB + 10)));
        assert.equal(record(path(name))?.state, 'partial', name);
      }
    });
    after(async () => {
      await daemon?.stop();
      fs?.unmount();
    });

    test('a partial file is released again with its copy: same key, no upload, every block freed, reads byte-exact', async () => {
      const p = path('movie.bin');
      const before = statSync(p, { bigint: true });
      assert.equal(Number(before.blocks) * 512, MiB, 'one chunk resident');
      const key = record(p)!.copy!.key;
      // held.bin is open in this process: busy (next test); written.bin is left alone here.
      const held = await open(path('held.bin'), 'r');
      let acts: Map<string, ApplyAction>;
      try {
        acts = await applyActions(policy, state);
      } finally {
        await held.close();
      }
      const a = acts.get('movie.bin')!;
      assert.equal(a.status, 'done', a.message);
      assert.equal(a.uploaded, 0);
      const rec = record(p)!;
      assert.equal(rec.state, 'released');
      assert.equal(rec.copy!.key, key, 'same object');
      assert.equal(lgetxattr(p, 'trusted.tier.resident'), null, 'no stale resident map');
      const after = statSync(p, { bigint: true });
      assert.equal(after.blocks, 0n);
      assert.equal(after.size, before.size);
      assert.equal(after.mtimeNs, before.mtimeNs, 'mtime restored exactly');
      // The chunk that was resident is a hole now: it must be fetched, not read as zeros.
      assert.ok((await readFile(p)).equals(content.get('movie.bin')!));

      const h = acts.get('held.bin')!;
      assert.equal(h.status, 'busy', JSON.stringify(h));
      const hp = path('held.bin');
      assert.equal(record(hp)?.state, 'partial');
      assert.equal(Number(statSync(hp).blocks) * 512, MiB, 'nothing punched');
      assert.ok((await readAt(hp, 1.5 * MiB, 4096)).equals(content.get('held.bin')!.subarray(1.5 * MiB, 1.5 * MiB + 4096)));
    });

    test('once closed, the held file is released on the next run', async () => {
      const hp = path('held.bin');
      const key = record(hp)!.copy!.key;
      const acts = await applyActions(policy, state);
      assert.equal(acts.get('held.bin')?.status, 'done', JSON.stringify(acts.get('held.bin')));
      assert.equal(record(hp)!.state, 'released');
      assert.equal(record(hp)!.copy!.key, key);
      assert.equal(statSync(hp).blocks, 0);
      assert.ok((await readFile(hp)).equals(content.get('held.bin')!));
    });

    test('a partial file written since is never released with its stale copy', async () => {
      const p = path('written.bin');
      const oldKey = record(p)!.copy!.key;
      const want = Buffer.from(content.get('written.bin')!);
      assert.ok((await readAt(p, 1.5 * MiB, 10)).equals(want.subarray(1.5 * MiB, 1.5 * MiB + 10)));
      const patch = Buffer.from('written after a partial recall');
      const fh = await open(p, 'r+');
      try {
        await fh.write(patch, 0, patch.length, 3 * MiB + 7);
      } finally {
        await fh.close();
      }
      patch.copy(want, 3 * MiB + 7);
      const old = new Date(Date.now() - 60 * 86_400_000);
      utimesSync(p, old, old); // still matched by the rule, still not the copy's mtime
      assert.equal(record(p)?.state, 'partial');
      const blocks = statSync(p).blocks;
      assert.equal(blocks * 512, 2 * MiB, 'two chunks resident');

      // The plan leaves it to the recall service...
      assert.equal((await applyActions(policy, state)).get('written.bin'), undefined);
      // ...and so does the engine when asked directly.
      const r = await tier('release', p, '--config', policy, '--state-dir', state);
      assert.match(r.out + r.err, /modified since/);
      assert.equal(record(p)?.state, 'partial');
      assert.equal(statSync(p).blocks, blocks, 'nothing punched');

      // A whole read finishes it (dirty); then it is released with a new copy of the new bytes.
      assert.ok((await readFile(p)).equals(want), 'the written bytes survive');
      assert.equal(record(p)?.state, 'dirty');
      const a = (await applyActions(policy, state)).get('written.bin')!;
      assert.equal(a.status, 'done', JSON.stringify(a));
      assert.equal(a.uploaded, SIZE);
      assert.equal(record(p)!.state, 'released');
      assert.notEqual(record(p)!.copy!.key, oldKey);
      assert.ok((await readFile(p)).equals(want));
    });
  });
}

// FAULT INJECTION (src/engine/fault.ts): the whole daemon is SIGKILLed (fanotify group and
// marks die with it) right after the record says released, and right after the punch
// (mtime not yet restored). A new daemon marks the file again from the catalog; it must
// read back byte-exact, never zeros.
describe('kill -9 of the daemon while re-releasing a partial file (ext4)', () => {
  let fs: LoopFs;
  let daemon: DaemonProc | undefined;
  let policy: string;
  let state: string;
  let data: string;
  let faultFile: string;
  before(async () => {
    fs = mountLoopFs('ext4');
    data = join(fs.dir, 'data');
    state = join(fs.scratch, 'state');
    faultFile = join(fs.scratch, 'fault');
    mkdirSync(data);
    policy = join(fs.scratch, 'p.hsmpolicy');
    writePolicy(policy, join(fs.scratch, 'tier'), data);
    daemon = await startReady(policy, state, { TIER_FAULT_FILE: faultFile });
  });
  after(async () => {
    await daemon?.stop();
    fs?.unmount();
  });

  for (const [n, point] of ['partial-after-record', 'partial-after-punch'].entries()) {
    test(`killed at ${point}: reads back byte-exact through the next daemon`, async () => {
      const p = join(data, `${point}.bin`);
      const b = pattern(3 * MiB + 1, n + 7);
      writeFileSync(p, b);
      const old = new Date(Date.now() - 60 * 86_400_000);
      utimesSync(p, old, old);
      assert.equal((await applyActions(policy, state)).get(`${point}.bin`)?.status, 'done');
      assert.ok((await readAt(p, 1.5 * MiB, 10)).equals(b.subarray(1.5 * MiB, 1.5 * MiB + 10)));
      assert.equal(record(p)?.state, 'partial');

      writeFileSync(faultFile, `${point} 1 daemon`);
      const died = daemon!.exited;
      await tier('apply', policy, '--state-dir', state);
      await died;
      assert.equal(existsSync(faultFile), false, 'the fault point was reached');
      assert.equal(record(p)?.state, 'released', 'record written before the kill');
      if (point === 'partial-after-punch') assert.equal(statSync(p).blocks, 0);

      daemon = await startReady(policy, state, { TIER_FAULT_FILE: faultFile });
      assert.ok((await readFile(p)).equals(b), 'byte-exact, not zeros');
    });
  }
});
