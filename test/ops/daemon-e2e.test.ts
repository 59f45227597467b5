// Issue 6 end to end with a real daemon on loop-mounted ext4: a cron policy releases files
// without manual action; a watermark policy brings a filled filesystem below its low mark,
// oldest first; writing an archived file makes it dirty and a later run re-archives it;
// a deleted released file's object goes after keep_deleted; SIGHUP with a broken policy
// keeps the old one; metrics and `tier report --json` reflect the workload.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { lgetxattr } from '../../src/kernel/libc.js';
import { decodeRecord, XATTR_STATE, type StateRecord } from '../../src/record/state-record.js';
import { Catalog } from '../../src/engine/catalog.js';
import { fsUsage } from '../../src/schedule/usage.js';
import { getMetrics, pattern, runCli, startDaemon, type DaemonProc } from '../helpers/daemon.js';

const rec = (p: string): StateRecord | null => decodeRecord(lgetxattr(p, XATTR_STATE));

/** Polls `cond` every 50 ms. Not a speed assertion: the cap only keeps a broken daemon from hanging the suite. */
async function until(what: string, cond: () => boolean | Promise<boolean>, capMs = 60_000): Promise<void> {
  const end = Date.now() + capMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`);
    await sleep(50);
  }
}

function tierObjects(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(d, e.name), r);
      else if (!e.name.endsWith('.meta.json') && !e.name.startsWith('.tmp-')) out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

describe('daemon operations end to end', () => {
  let fs: LoopFs;
  let d: DaemonProc | undefined;
  before(() => {
    fs = mountLoopFs('ext4', 64);
  });
  after(async () => {
    if (d) await d.stop();
    fs.unmount();
  });

  test('cron: a policy scheduled every 2 s releases files in the daemon without manual action; files read back are archived again; metrics and report agree', async () => {
    const data = join(fs.dir, 'cron');
    const tierDir = join(fs.scratch, 'tier-cron');
    const state = join(fs.scratch, 'state-cron');
    mkdirSync(data);
    mkdirSync(tierDir);
    const sizes = [64 * 1024, 256 * 1024, 1024 * 1024];
    const total = sizes.reduce((a, b) => a + b, 0);
    const files = sizes.map((size, i) => {
      const p = join(data, `f${i}.bin`);
      writeFileSync(p, pattern(size, 200 + i));
      return p;
    });
    const policy = join(fs.scratch, 'cron.hsmpolicy');
    writeFileSync(
      policy,
      `tier slow { local "${tierDir}" }\nfileset data { root "${data}" }\n` +
        `policy every2s on data {\n  schedule "*/2 * * * * *"\n  cooldown 1h\n  rule all: size >= 0B -> release to slow\n}\n`,
    );
    d = startDaemon([policy], state);
    await d.ready;
    await until('every file released by the schedule', () => files.every((f) => rec(f)?.state === 'released'));
    const released = async () => {
      const m = await getMetrics(state);
      return /^tier_files\{state="released"\} 3$/m.test(m) ? m : null;
    };
    let m = await released();
    assert.ok(m, 'metrics count the three released');
    assert.match(m, /^tier_bytes\{state="released"\} 1376256$/m);
    assert.match(m, /^tier_policy_runs_total\{policy="every2s",trigger="schedule",outcome="ok"\} [1-9]\d*$/m);
    let r = await runCli(['report', '--json', '--state-dir', state]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).byState.find((b: { label: string }) => b.label === 'released'), { label: 'released', files: 3, bytes: total });
    // Read back whole: each file is archived again (resident, its copy still valid), and the
    // cooldown keeps the schedule from releasing it again; catalog, gauges and report follow.
    files.forEach((f, i) => assert.ok(readFileSync(f).equals(pattern(sizes[i]!, 200 + i)), `${f} reads back`));
    await until('every file read back is archived', () => files.every((f) => rec(f)?.state === 'archived'));
    await until('the gauges say archived', async () => /^tier_files\{state="archived"\} 3$/m.test(await getMetrics(state)));
    m = await getMetrics(state);
    // The known workload, exactly: 3 releases, each file read back once, every byte fetched counted once.
    assert.match(m, /^tier_migrations_total\{action="release",outcome="done"\} 3$/m);
    assert.match(m, new RegExp(`^tier_recall_bytes_total ${total}$`, 'm'));
    assert.doesNotMatch(m, /^tier_recall_errors_total\{/m, 'no recall failed');
    assert.match(m, /^tier_files\{state="released"\} 0$/m);
    assert.match(m, /^tier_bytes\{state="archived"\} 1376256$/m);
    r = await runCli(['report', '--json', '--state-dir', state]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.byState.find((b: { label: string }) => b.label === 'archived'), { label: 'archived', files: 3, bytes: total });
    assert.ok(j.lastRuns.length >= 1 && j.lastRuns[0].policy === 'every2s');
    assert.equal((await d.stop()).code, 0);
    d = undefined;
  });

  test('watermark: a filled filesystem is brought below the low mark, least recently accessed first', async () => {
    const data = join(fs.dir, 'wm');
    const tierDir = join(fs.scratch, 'tier-wm');
    const state = join(fs.scratch, 'state-wm');
    mkdirSync(data);
    mkdirSync(tierDir);
    const base = Math.ceil((await fsUsage(fs.dir)).percent);
    const high = base + 40;
    const low = base + 20;
    const files: string[] = [];
    const now = Date.now();
    for (let i = 0; (await fsUsage(fs.dir)).percent <= high + 2; i++) {
      const p = join(data, `w${String(i).padStart(2, '0')}.bin`);
      writeFileSync(p, pattern(2 * 1024 * 1024, 300 + i));
      const t = new Date(now - (100 - i) * 86_400_000); // w00 is the least recently accessed
      utimesSync(p, t, t);
      files.push(p);
    }
    const before = (await fsUsage(fs.dir)).percent;
    assert.ok(before > high, `filled to ${before.toFixed(1)}% > ${high}%`);
    const policy = join(fs.scratch, 'wm.hsmpolicy');
    writeFileSync(
      policy,
      `tier slow { local "${tierDir}" }\nfileset data { root "${data}" }\n` +
        `policy full on data {\n  when usage > ${high}% until usage < ${low}%\n  check_interval 1s\n  rule big: size >= 1MiB -> release to slow\n}\n`,
    );
    d = startDaemon([policy], state);
    await d.ready;
    await until(`usage below ${low}%`, async () => (await fsUsage(fs.dir)).percent < low);
    const released = files.map((f) => rec(f)?.state === 'released');
    const k = released.filter(Boolean).length;
    assert.ok(k > 0 && k < files.length, `${k} of ${files.length} released`);
    assert.deepEqual(released, files.map((_, i) => i < k), 'the oldest files went first, the newest stay');
    assert.equal((await d.stop()).code, 0);
    d = undefined;
  });

  test('change tracking: writing an archived file makes it dirty at once; a later run re-archives it', async () => {
    const data = join(fs.dir, 'dirty');
    const tierDir = join(fs.scratch, 'tier-dirty');
    const state = join(fs.scratch, 'state-dirty');
    mkdirSync(data);
    mkdirSync(tierDir);
    const file = join(data, 'notes.txt');
    writeFileSync(file, 'version one\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    const policy = join(fs.scratch, 'dirty.hsmpolicy');
    // last_mod > 4s: a file just written waits a few runs, so its dirty state is observable.
    writeFileSync(
      policy,
      `tier slow { local "${tierDir}" }\nfileset data { root "${data}" }\n` +
        `policy copy on data {\n  schedule "*/1 * * * * *"\n  rule settled: last_mod > 4s -> archive to slow\n}\n`,
    );
    d = startDaemon([policy], state);
    await d.ready;
    await until('archived by the schedule', () => rec(file)?.state === 'archived');
    const first = rec(file)!;
    const st = statSync(file);
    appendFileSync(file, 'version two\n');
    const cat = new Catalog(join(state, 'catalog.db'));
    try {
      await until('catalog row dirty', () => cat.get(Number(st.dev), Number(st.ino))?.state === 'dirty', 10_000);
    } finally {
      cat.close();
    }
    await until('re-archived by a later run', () => {
      const r = rec(file);
      return r?.state === 'archived' && r.copy?.size === 'version one\nversion two\n'.length;
    });
    const second = rec(file)!;
    assert.notEqual(second.copy?.key, first.copy?.key, 'a new copy');
    assert.ok(second.gen > first.gen);
    assert.equal(readFileSync(join(tierDir, second.copy!.key), 'utf8'), 'version one\nversion two\n');
    assert.equal((await d.stop()).code, 0);
    d = undefined;
  });

  test('gc: the object of a deleted released file is removed after keep_deleted; SIGHUP with a broken policy keeps the old one', async () => {
    const data = join(fs.dir, 'gc');
    const tierDir = join(fs.scratch, 'tier-gc');
    const state = join(fs.scratch, 'state-gc');
    mkdirSync(data);
    mkdirSync(tierDir);
    const keep = join(data, 'keep.bin');
    const doomed = join(data, 'doomed.bin');
    writeFileSync(keep, pattern(128 * 1024, 1));
    writeFileSync(doomed, pattern(128 * 1024, 2));
    const policy = join(fs.scratch, 'gc.hsmpolicy');
    const text =
      `tier slow { local "${tierDir}" }\nfileset data { root "${data}" }\n` +
      `policy rel on data {\n  schedule "*/1 * * * * *"\n  keep_deleted 2s\n  rule all: size > 0B -> release to slow\n}\n`;
    writeFileSync(policy, text);
    d = startDaemon([policy], state);
    await d.ready;
    await until('both released', () => [keep, doomed].every((f) => rec(f)?.state === 'released'));
    const doomedKey = rec(doomed)!.copy!.key;
    const keepKey = rec(keep)!.copy!.key;
    unlinkSync(doomed);
    await until('the orphan object deleted', () => !existsSync(join(tierDir, doomedKey)));
    const left = tierObjects(tierDir);
    assert.deepEqual(left.filter((k) => !k.endsWith('.sums')), [keepKey], 'the live file keeps its object');
    assert.ok(!left.some((k) => k.startsWith(doomedKey)), 'nothing of the deleted file is left (its chunk sums neither)');
    // The counter moves when the collection ends (after the delete, once gc-orphans.json is written).
    await until('gc counted in the metrics', async () => /^tier_gc_objects_deleted_total\{tier="slow"\} 1$/m.test(await getMetrics(state)), 20_000);

    // SIGHUP with a broken policy: rejected with diagnostics, the old one keeps running.
    writeFileSync(policy, text.replace('release to slow', 'release to nowhere'));
    d.proc.kill('SIGHUP');
    await until('the reload is rejected', () => d!.logs.some((l) => /reload rejected/.test(String(l.msg))), 20_000);
    const rejected = d.logs.find((l) => /reload rejected/.test(String(l.msg)))!;
    assert.match(JSON.stringify(rejected), /gc\.hsmpolicy:\d+:\d+: error/);
    const fresh = join(data, 'after-hup.bin');
    writeFileSync(fresh, pattern(64 * 1024, 3));
    await until('the old policy still releases new files', () => rec(fresh)?.state === 'released');
    assert.equal(d.proc.exitCode, null, 'the daemon is still running');
    assert.equal((await d.stop()).code, 0);
    d = undefined;
  });

  test('cooldown: a file read back after release is not released again by the next runs; metrics also on --metrics-listen', async () => {
    const data = join(fs.dir, 'cool');
    const tierDir = join(fs.scratch, 'tier-cool');
    const state = join(fs.scratch, 'state-cool');
    mkdirSync(data);
    mkdirSync(tierDir);
    const hot = join(data, 'hot.bin');
    const content = pattern(256 * 1024, 77);
    writeFileSync(hot, content);
    const policy = join(fs.scratch, 'cool.hsmpolicy');
    writeFileSync(
      policy,
      `tier slow { local "${tierDir}" }\nfileset data { root "${data}" }\n` +
        `policy rel on data {\n  schedule "*/1 * * * * *"\n  cooldown 1h\n  rule all: size > 0B -> release to slow\n}\n`,
    );
    d = startDaemon([policy], state, ['--metrics-listen', '127.0.0.1:0']);
    await d.ready;
    const listening = await d.waitLog((l) => l.msg === 'metrics listening');
    const url = `http://${String(listening.address)}/metrics`;
    await until('released by the schedule', () => rec(hot)?.state === 'released');
    assert.ok(readFileSync(hot).equals(content), 'reads back (a recall, logged)');
    const runs = async () => Number(/^tier_policy_runs_total\{policy="rel",trigger="schedule",outcome="ok"\} (\d+)$/m.exec(await getMetrics(state))?.[1] ?? 0);
    const after = await runs();
    await until('three more scheduled runs', async () => (await runs()) >= after + 3, 20_000);
    assert.notEqual(rec(hot)?.state, 'released', 'held back by the cooldown');
    assert.ok(statSync(hot).blocks * 512 >= content.length, 'its data stays on disk');
    const viaPort = await new Promise<string>((resolve, reject) => {
      request(url, (res) => {
        let t = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (t += c));
        res.on('end', () => resolve(t));
      }).on('error', reject).end();
    });
    assert.match(viaPort, /^tier_recalls_total [1-9]\d*$/m, 'the loopback port serves the same registry');
    assert.match(viaPort, /^tier_migrations_total\{action="release",outcome="done"\} 1$/m, 'released once only');
    assert.equal((await d.stop()).code, 0);
    d = undefined;
  });
});
