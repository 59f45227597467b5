// Failures: a tier that is down or hangs answers EIO (never zeros, never a hang) and
// works again once back; a worker killed mid-recall leaves readers blocked, not fed
// zeros, and its successor answers them with EIO, then serves.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_WHOLE_FILE_FOR } from '../../src/dsl/ast.js';
import { XATTR_STATE, encodeRecord } from '../../src/record/state-record.js';
import { addInodeMark, createGroup, releasedMask } from '../../src/kernel/fanotify.js';
import { fsetxattr } from '../../src/kernel/libc.js';
import { silentLogger } from '../../src/log.js';
import { RecallService } from '../../src/recall/service.js';
import type { Tier } from '../../src/tiers/tier.js';
import { makeReleased, pattern, run, startHarness, stateOf, type Harness } from './harness.js';

/** Fault injection: delegates to a real tier; get() hangs (ignoring its signal) while `hang`. */
class HangingTierForTest implements Tier {
  hang = false;
  readonly name: string;
  readonly kind: Tier['kind'];
  constructor(private readonly inner: Tier) {
    this.name = inner.name;
    this.kind = inner.kind;
  }
  get(...a: Parameters<Tier['get']>): Promise<Buffer> {
    return this.hang ? new Promise<Buffer>(() => {}) : this.inner.get(...a);
  }
  put(...a: Parameters<Tier['put']>) {
    return this.inner.put(...a);
  }
  getStream(...a: Parameters<Tier['getStream']>) {
    return this.inner.getStream(...a);
  }
  stat(...a: Parameters<Tier['stat']>) {
    return this.inner.stat(...a);
  }
  delete(...a: Parameters<Tier['delete']>) {
    return this.inner.delete(...a);
  }
  list(...a: Parameters<Tier['list']>) {
    return this.inner.list(...a);
  }
  close() {
    return this.inner.close();
  }
}

describe('tier failures', () => {
  let h: Harness;
  let hanging: HangingTierForTest;
  before(async () => {
    h = await startHarness({
      type: 'ext4',
      tuning: { timeoutMs: 400 },
      wrapTier: (t) => (hanging = new HangingTierForTest(t)),
    });
  });
  after(async () => h.close());

  test('tier down: the reader gets EIO, then the right bytes once the tier is back', async () => {
    const data = pattern(600_000, 31);
    const path = await makeReleased(h, 'down.bin', data);
    const tierDir = join(h.fs.scratch, 'tier');
    renameSync(tierDir, tierDir + '.away');
    const r = await run('cat', [path]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Input\/output error/);
    assert.equal(r.stdout.length, 0); // not one byte of zeros
    assert.ok(h.records.some((x) => x.path === path && x.error !== undefined));
    renameSync(tierDir + '.away', tierDir);
    const ok = await run('cat', [path]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(ok.stdout.equals(data));
  });

  test('a tier that never answers: EIO after the tier timeout, not a hang', async () => {
    const data = pattern(300_000, 32);
    const path = await makeReleased(h, 'hang.bin', data);
    hanging.hang = true;
    try {
      const r = await run('dd', [`if=${path}`, 'bs=4096', 'count=1', 'status=none']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
    } finally {
      hanging.hang = false;
    }
    const ok = await run('cat', [path]);
    assert.ok(ok.stdout.equals(data));
  });

  test('a released record without a copy, or naming an unknown tier: EIO, never zeros', async () => {
    const copy = { tier: 'nope', key: 'k/x', size: 8192, mtimeNs: '1', sha256: '0', archivedAt: 0, chunk: 4096 };
    for (const [name, rec] of [
      ['nocopy.bin', { v: 1, state: 'released', pinned: false, gen: 1 }],
      ['othertier.bin', { v: 1, state: 'released', pinned: false, gen: 1, copy }],
    ] as const) {
      const path = join(h.fs.dir, name);
      writeFileSync(path, Buffer.alloc(8192));
      const fd = openSync(path, 'r');
      try {
        h.svc.markReleased(fd);
        fsetxattr(fd, XATTR_STATE, encodeRecord(rec));
      } finally {
        closeSync(fd);
      }
      const r = await run('cat', [path]);
      assert.notEqual(r.code, 0, name);
      assert.match(r.stderr, /Input\/output error/, name);
      assert.equal(r.stdout.length, 0, name);
    }
  });
});

describe('worker killed mid-recall', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ type: 'ext4' });
  });
  after(async () => h.close());

  test('the reader stays blocked (no zeros); the successor answers EIO, then serves', async () => {
    const group = createGroup('pre-content');
    const inflightPath = join(h.fs.scratch, 'stuck-inflight');
    const data = pattern(500_000, 34);
    // Released for the second group (the harness's own service never sees these events).
    const path = await makeReleased(h, 'killed.bin', data, 0o644, (fd) => addInodeMark(group, fd, releasedMask('pre-content')));
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures/stuck-worker.ts'), inflightPath], {
      stdio: ['ignore', 'pipe', 'inherit', group],
    });
    const lines: string[] = [];
    const waitFor = (what: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => (lines.includes(what) ? resolve() : undefined);
        child.stdout!.on('data', (d: Buffer) => {
          lines.push(...d.toString().split('\n').filter(Boolean));
          check();
        });
        child.on('exit', () => reject(new Error(`worker exited before "${what}"`)));
        check();
      });
    await waitFor('serving');
    let readerDone = false;
    const reader = run('cat', [path]).finally(() => (readerDone = true));
    await waitFor('fetching');
    const dead = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await dead;
    assert.equal(readerDone, false); // still blocked on the unanswered event
    const successor = new RecallService({
      groupFd: group,
      mode: 'pre-content',
      tiers: new Map([[h.tier.name, h.tier]]),
      settings: { wholeFileFor: DEFAULT_WHOLE_FILE_FOR },
      inflightPath,
      log: silentLogger,
      tuning: new Map([[h.tier.name, h.tuning]]),
    });
    await successor.start();
    try {
      const r = await reader;
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.equal(r.stdout.length, 0);
      assert.ok(successor.stats().staleAnswered >= 1);
      // The marks survived in the group: the successor recalls the next read.
      const again = await run('cat', [path]);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(again.stdout.equals(data));
      await successor.settled(); // the completion is recorded after the last read's answer
      assert.equal((await stateOf(path))?.state, 'archived');
    } finally {
      await successor.stop();
      closeSync(group);
    }
  });
});
