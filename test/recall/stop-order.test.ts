// stop() must answer every event the event thread forwarded, whatever order Node delivers
// the thread's 'exit' and its port's messages in. When the main thread is busy while the
// thread forwards an event and exits, Node emits 'exit' first (measured on Node 20 and 24):
// a stop() that took 'exit' for "all messages are in" closed the port with the event still
// queued, and the reader stayed blocked until a successor answered it EIO (CI: a reader got
// EIO during `systemctl reload`, test/daemon/systemd-reload.test.ts).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { InflightRecord } from '../../src/recall/inflight.js';
import { makeReleased, pattern, run, startHarness, type Harness } from './harness.js';

/** Blocks this thread (and its event loop) for `ms`: what a busy main thread does. */
function busy(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe('recall stop: forwarded events are answered even when the thread exits first', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ type: 'ext4' });
  });
  after(async () => {
    await h.close();
  });

  test('an event forwarded while the main thread is busy is served by stop(), not dropped', async () => {
    const data = pattern(3 * 1024 * 1024, 41);
    const path = await makeReleased(h, 'order.bin', data);
    // One read of 4 KiB: one event after the open (which the thread answers alone); it is not
    // resident, so the thread forwards it. The process forks now, synchronously.
    const reader = run('dd', [`if=${path}`, 'bs=4096', 'count=1', 'status=none']);
    busy(400); // the thread reads and forwards the event; nothing here takes the message
    const stopped = h.svc.stop(); // sets the stop flag at once
    busy(400); // the thread sees it (poll timeout 100 ms), posts 'stopped' and exits
    await stopped;
    const outcome = await Promise.race([reader.then((r) => r), new Promise<null>((r) => setTimeout(() => r(null), 3000))]);
    if (outcome === null) {
      new InflightRecord(h.inflightPath).answerStale(h.group); // unblock the reader before failing
      await reader;
      assert.fail('the reader was left blocked: stop() dropped a forwarded event');
    }
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.ok(outcome.stdout.equals(data.subarray(0, 4096)), 'the bytes read right');
  });
});
