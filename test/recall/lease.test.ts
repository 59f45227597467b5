// The engine releases files inside the recall worker's process, holding a write lease.
// An opener of such a file makes the kernel open our event fd, which must break the
// lease. Measured: a group read() on the lease holder's main thread fails at once and
// the kernel denies the event (the reader gets EPERM); the service reads on the
// threadpool, where the read waits while SIGIO runs and the holder unlocks.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { XATTR_STATE, encodeRecord } from '../../src/record/state-record.js';
import { getLease, onLeaseBreak, setLease } from '../../src/kernel/lease.js';
import { fsetxattr, futimens, nsToTimespec } from '../../src/kernel/libc.js';
import { punchHole } from '../../src/kernel/punch.js';
import { MTIME_NS, pattern, run, startHarness, stateOf, type Harness } from './harness.js';

describe('a lease held by this process while a reader opens', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ type: 'ext4' });
  });
  after(async () => h.close());

  test('SIGIO reaches the lease holder while the reader waits; the reader then gets the recalled bytes', async () => {
    const data = pattern(400_000, 61);
    const path = join(h.fs.dir, 'leased.bin');
    writeFileSync(path, data);
    await h.tier.put('k/leased', Readable.from([data]), data.length, {
      sha256: '', size: data.length, path, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0,
    }); // an empty sha256: the tier computes it
    // The release protocol, stopped just before the unlock.
    const fd = openSync(path, 'r+');
    h.svc.markReleased(fd);
    setLease(fd, 'write', path);
    punchHole(fd, 0, 512 * 1024, path);
    fsetxattr(fd, XATTR_STATE, encodeRecord({
      v: 1, state: 'released', pinned: false, gen: 1,
      copy: { tier: h.tier.name, key: 'k/leased', size: data.length, mtimeNs: MTIME_NS.toString(), sha256: '', archivedAt: 0, chunk: h.tuning.chunk },
    }));
    futimens(fd, nsToTimespec(MTIME_NS), nsToTimespec(MTIME_NS));
    let leaseAtSigio: string | undefined;
    let eventsAtSigio = -1;
    const broke = new Promise<void>((resolve) => {
      const off = onLeaseBreak(() => {
        leaseAtSigio = getLease(fd);
        eventsAtSigio = h.svc.stats().events;
        setLease(fd, 'unlock');
        off();
        resolve();
      });
    });
    const reader = run('cat', [path]);
    await broke;
    closeSync(fd);
    const r = await reader;
    // The breaker is the kernel opening our O_RDWR event fd (a writer): F_UNLCK pending.
    assert.equal(leaseAtSigio, 'unlock');
    // The SIGIO handler ran while the group read still waited on the lease.
    assert.equal(eventsAtSigio, 0);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(data));
    assert.equal((await stateOf(path))?.state, 'archived');
  });
});
