// `tier daemon` as a real process on a loop-mounted ext4: ready only after start-up marks,
// control socket mode 0600, live status, clean SIGTERM, refusal of bad policies, stale
// sockets, and a second daemon on the same state dir.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { connectDaemon } from '../../src/daemon/client.js';
import { socketPath } from '../../src/daemon/protocol.js';
import { RecallLog, recallLogPath } from '../../src/reports/recall-log.js';
import { pattern, releaseByHand, startDaemon, daemonLayout } from '../helpers/daemon.js';

describe('tier daemon lifecycle', () => {
  let fs: LoopFs;
  let stateDir: string;
  let tierDir: string;
  let policy: string;
  let data: string;
  const files: { path: string; content: Buffer }[] = [];

  before(async () => {
    fs = mountLoopFs('ext4');
    ({ stateDir, tierDir, data, policy } = daemonLayout(fs));
    for (const [i, size] of [3 * 1024 * 1024 + 17, 4096, 1].entries()) {
      const path = join(data, `f${i}.bin`);
      const content = pattern(size, i + 1);
      writeFileSync(path, content);
      await releaseByHand(path, 'slow', tierDir, stateDir);
      files.push({ path, content });
    }
    // A catalog row whose file is gone: logged and skipped, never fatal.
    const gone = join(data, 'gone.bin');
    writeFileSync(gone, pattern(10_000, 9));
    await releaseByHand(gone, 'slow', tierDir, stateDir);
    await import('node:fs/promises').then((m) => m.unlink(gone));
  });

  after(() => fs?.unmount());

  test('prints ready after marking, serves reads and status, exits 0 on SIGTERM', async () => {
    // Start-up marking per file: the inode-mark fallback (recall/marks.ts; fs-marks.test.ts has the default).
    const d = startDaemon([policy], stateDir, [], { env: { TIER_MARKS: 'inode' } });
    try {
      await d.ready;
      assert.deepEqual(d.stdout, ['ready'], 'stdout holds the ready line and nothing else');

      const st = statSync(socketPath(stateDir));
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o600, 'control socket is mode 0600');
      assert.equal(statSync(stateDir).mode & 0o077, 0, 'state dir is private');

      const client = await connectDaemon(stateDir);
      assert.ok(client, 'a live daemon is found');
      const status = await client.status();
      assert.equal(status.startup.marked, files.length);
      assert.equal(status.startup.skipped, 1, 'the vanished file is skipped');
      assert.equal(status.mode, 'pre-content');
      assert.notEqual(status.pid, status.supervisorPid, 'the worker is its own process');
      assert.equal(d.proc.pid, status.supervisorPid);

      // Released files read back byte-exact through the recall service.
      for (const f of files) assert.ok(readFileSync(f.path).equals(f.content), `${f.path} reads back`);

      const health = await client.health();
      assert.equal(health.ok, true);

      // A non-root peer cannot connect (mode 0600 socket in a 0700 state dir).
      const nobody = spawnSync(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e',
          `require('net').connect(${JSON.stringify(socketPath(stateDir))}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`],
        { encoding: 'utf8' },
      );
      assert.equal(nobody.stdout.trim(), 'EACCES', nobody.stderr);
    } finally {
      const { code, signal } = await d.stop();
      assert.equal(signal, null);
      assert.equal(code, 0, `clean exit on SIGTERM\n${d.stderrText()}`);
    }
    assert.equal(existsSync(socketPath(stateDir)), false, 'socket removed on a clean stop');
    assert.equal(await connectDaemon(stateDir), null, 'no daemon afterwards');
    const lines = d.logs.filter((l) => 'msg' in l);
    assert.ok(lines.length > 0 && lines.every((l) => typeof l.time === 'string' && typeof l.level === 'string'), 'stderr is JSON lines');
    assert.ok(d.logs.some((l) => l.msg === 'not marked at start-up' && l.reason === 'missing'));
    // Each released file's recall was logged for `tier report` (flushed on stop).
    const rl = new RecallLog(recallLogPath(stateDir));
    try {
      const top = rl.top(10);
      for (const f of files) assert.ok(top.some((t) => t.path === f.path && t.bytes >= f.content.length), `${f.path} in the recall log`);
    } finally {
      rl.close();
    }
  });

  test('refuses a policy with errors: exit 1, diagnostics with file:line:col, no ready', async () => {
    const bad = join(fs.scratch, 'bad.hsmpolicy');
    writeFileSync(bad, 'tier slow { local "relative/dir" }\npolicy p on nowhere {\n  rule r: size > 1MiB -> release to glacier\n}\n');
    const d = startDaemon([bad], join(fs.scratch, 'state-bad'));
    const { code } = await d.exited;
    assert.equal(code, 1);
    assert.deepEqual(d.stdout, []);
    const err = d.stderrText();
    assert.match(err, /bad\.hsmpolicy:\d+:\d+: error\[/);
    assert.doesNotMatch(err, /\n\s+at .*\.ts:\d+/, 'no stack trace');
  });

  test('replaces a stale socket left by a crashed daemon', async () => {
    const sd = join(fs.scratch, 'state-stale');
    mkdirSync(sd, { mode: 0o700 });
    // A process that binds the socket and dies by SIGKILL leaves the file behind.
    const holder = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(socketPath(sd))}, () => console.log('up'))`,
    ]);
    await new Promise<void>((r) => holder.stdout.once('data', () => r()));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    assert.ok(existsSync(socketPath(sd)), 'stale socket file exists');
    assert.equal(await connectDaemon(sd), null, 'a stale socket is no daemon');

    const d = startDaemon([policy], sd);
    try {
      await d.ready;
      assert.ok(await connectDaemon(sd));
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  });

  test('a second daemon on the same state dir refuses to start', async () => {
    const sd = join(fs.scratch, 'state-two');
    const first = startDaemon([policy], sd);
    try {
      await first.ready;
      const second = startDaemon([policy], sd);
      const { code } = await second.exited;
      assert.equal(code, 1);
      assert.match(second.stderrText(), /another tier daemon \(pid \d+\)/);
      const c = await connectDaemon(sd);
      assert.ok(c, 'the first daemon still answers');
      assert.equal((await c.status()).supervisorPid, first.proc.pid);
    } finally {
      assert.equal((await first.stop()).code, 0);
    }
  });

  test('SIGHUP reloads the policies; a broken file or a moved tier is rejected and the old ones keep running', async () => {
    const sd = join(fs.scratch, 'state-hup');
    const pfile = join(fs.scratch, 'hup.hsmpolicy');
    writeFileSync(pfile, readFileSync(policy, 'utf8'));
    const d = startDaemon([pfile], sd);
    try {
      await d.ready;
      const client = (await connectDaemon(sd))!;

      writeFileSync(pfile, 'tier slow { local "relative" }\n');
      d.proc.kill('SIGHUP');
      const rejected = await d.waitLog((l) => l.msg === 'reload rejected, the previous policies keep running');
      assert.match(String(rejected.diagnostics), /hup\.hsmpolicy:1:\d+: error\[/);

      writeFileSync(pfile, readFileSync(policy, 'utf8').replace(tierDir, join(fs.scratch, 'moved')));
      d.proc.kill('SIGHUP');
      await d.waitLog((l) => l.msg === 'reload rejected, the previous policies keep running' && typeof l.tier === 'string');

      const second = join(fs.scratch, 'tier2');
      mkdirSync(second);
      writeFileSync(pfile, readFileSync(policy, 'utf8') + `tier second { local "${second}" }\n`);
      d.proc.kill('SIGHUP');
      const ok = await d.waitLog((l) => l.msg === 'policies reloaded');
      assert.deepEqual(ok.newTiers, ['second']);
      const f = join(data, 'hup.bin');
      writeFileSync(f, pattern(100_000, 5));
      const r = (await client.manual('release', { paths: [f], tier: 'second' })) as Record<string, unknown>;
      assert.equal(r.done, 1, JSON.stringify(r));
      assert.ok(readFileSync(f).equals(pattern(100_000, 5)), 'recalled from the tier added by the reload');
    } finally {
      assert.equal((await d.stop()).code, 0);
    }
  });
});
