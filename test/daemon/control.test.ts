// The control socket against a real daemon on loop-mounted ext4: manual release and
// archive through the daemon (the engine's protocol with the daemon's marks), streamed
// progress, and the errors a client gets for bad requests.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon, DaemonError, type DaemonClient } from '../../src/daemon/client.js';
import { socketPath } from '../../src/daemon/protocol.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import { pattern, startDaemon, daemonLayout, type DaemonProc } from '../helpers/daemon.js';

function raw(sock: string, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method, path }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('control socket', () => {
  let fs: LoopFs;
  let stateDir: string;
  let data: string;
  let policy: string;
  let d: DaemonProc;
  let client: DaemonClient;

  before(async () => {
    fs = mountLoopFs('ext4');
    ({ stateDir, data, policy } = daemonLayout(fs));
    d = startDaemon([policy], stateDir);
    await d.ready;
    client = (await connectDaemon(stateDir))!;
  });

  after(async () => {
    if (d) assert.equal((await d.stop()).code, 0);
    fs?.unmount();
  });

  test('POST /release frees the blocks, streams one progress line per path, and the file reads back', async () => {
    const files = [0, 1, 4097, 3 * 1024 * 1024 + 1].map((size, i) => {
      const path = join(data, `r ${i}.bin`); // a space in the name
      writeFileSync(path, pattern(size, 50 + i));
      return path;
    });
    const mtimes = files.map((f) => statSync(f).mtimeMs);
    const events: Record<string, unknown>[] = [];
    const result = (await client.manual('release', { paths: files }, (e) => events.push(e as Record<string, unknown>))) as Record<string, unknown>;
    assert.equal(events.length, files.length);
    assert.deepEqual(
      events.map((e) => e.path),
      files,
    );
    assert.equal(result.failed, 0, JSON.stringify(result));
    assert.equal((result.done as number) + (result.skipped as number), files.length, 'every file released (or skipped), none failed');
    for (const [i, f] of files.entries()) {
      const st = statSync(f);
      if (st.size > 0) {
        assert.equal(decodeRecord(lgetxattr(f, XATTR_STATE))?.state, 'released', f);
        assert.ok(st.blocks * 512 < 4096 + 4096, `${f}: blocks freed (${st.blocks})`);
      }
      assert.equal(st.mtimeMs, mtimes[i], 'mtime unchanged');
    }
    for (const [i, f] of files.entries())
      assert.ok(readFileSync(f).equals(pattern([0, 1, 4097, 3 * 1024 * 1024 + 1][i]!, 50 + i)), `${f} reads back`);
  });

  test('POST /recall brings a released file back whole; the state becomes archived', async () => {
    const path = join(data, 'back.bin');
    const content = pattern(5 * 1024 * 1024 + 3, 77);
    writeFileSync(path, content);
    assert.equal(((await client.manual('release', { paths: [path] })) as Record<string, unknown>).done, 1);
    assert.ok(statSync(path).blocks * 512 < content.length / 2, 'released');
    const result = (await client.manual('recall', { paths: [path, join(data, 'a-resident-file')] })) as Record<string, unknown>;
    assert.equal(result.done, 1);
    assert.equal(result.failed, 1, 'a missing path fails, the other still recalled');
    assert.equal(decodeRecord(lgetxattr(path, XATTR_STATE))?.state, 'archived');
    assert.ok(statSync(path).blocks * 512 >= content.length, 'every block is back');
    assert.ok(readFileSync(path).equals(content));
  });

  test('POST /archive keeps the data and records the copy', async () => {
    const path = join(data, 'a.bin');
    writeFileSync(path, pattern(200_000, 7));
    const before = statSync(path).blocks;
    const result = (await client.manual('archive', { paths: [path], tier: 'slow' })) as Record<string, unknown>;
    assert.equal(result.done, 1);
    const rec = decodeRecord(lgetxattr(path, XATTR_STATE));
    assert.equal(rec?.state, 'archived');
    assert.equal(rec?.copy?.tier, 'slow');
    assert.ok(statSync(path).blocks >= before, 'archive frees nothing (the record may take an xattr block)');
  });

  test('errors: unknown tier, relative paths, bad JSON, unknown endpoint, foreign policy tier', async () => {
    await assert.rejects(client.manual('release', { paths: [join(data, 'x')], tier: 'glacier' }), (e: DaemonError) => {
      assert.equal(e.status, 400);
      assert.match(e.message, /unknown tier "glacier"/);
      return true;
    });
    await assert.rejects(client.manual('release', { paths: ['relative/path'] }), /absolute paths/);
    const sock = socketPath(stateDir);
    const bad = await raw(sock, 'POST', '/release', '{not json');
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.text).message, /not JSON/);
    const none = await raw(sock, 'GET', '/nope');
    assert.equal(none.status, 404);
    const metrics = await raw(sock, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^# (HELP|TYPE) /m, 'Prometheus text on the control socket');

    // A policy whose tier the daemon does not serve: releasing there could never be recalled.
    const other = join(fs.scratch, 'other.hsmpolicy');
    writeFileSync(other, `tier slow { local "${join(fs.scratch, 'elsewhere')}" }\nfileset f { root "${data}" }\npolicy p on f {\n  rule r: size > 0B -> release to slow\n}\n`);
    await assert.rejects(client.apply({ policyFile: other, dryRun: false }), (e: DaemonError) => {
      assert.equal(e.status, 409);
      assert.match(e.message, /other\.hsmpolicy:1:\d+: tier "slow" is not served by this daemon/);
      return true;
    });
    // An invalid policy file: diagnostics with file:line:col in the message.
    const broken = join(fs.scratch, 'broken.hsmpolicy');
    writeFileSync(broken, 'policy p on nothing {\n}\n');
    await assert.rejects(client.apply({ policyFile: broken, dryRun: true }), /broken\.hsmpolicy:1:\d+: error\[/);
  });
});
