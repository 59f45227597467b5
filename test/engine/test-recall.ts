// A minimal whole-file recall handler for engine tests, standing in for the real
// RecallService (src/recall/service.ts): a real pre-content fanotify group whose events
// fill the whole file from the tier through the event fd on the first read (opens are
// allowed at once), restore mtime, set the record
// to `archived` and allow. Reads of released files must be async (threadpool) in the
// test process, since this handler runs on the same event loop.
import { closeSync, writeSync } from 'node:fs';
import { addInodeMark, createGroup, decodeEvents, FAN_ALLOW, FAN_OPEN_PERM, FAN_PRE_ACCESS, FAN_DENY_EIO, releasedMask, removeInodeMark, respond } from '../../src/kernel/fanotify.js';
import { fgetxattr, fsetxattr, futimens, pollReadable, readNb, UTIME_OMIT, type PollHandle } from '../../src/kernel/libc.js';
import { decodeRecord, encodeRecord, XATTR_STATE } from '../../src/record/state-record.js';
import type { Marker } from '../../src/engine/execute.js';
import type { Tier } from '../../src/tiers/tier.js';

export interface TestRecall extends Marker {
  fills: number;
  marks: number;
  errors: string[];
  stop(): void;
}

export function startTestRecall(tiers: Map<string, Tier>): TestRecall {
  const group = createGroup('pre-content');
  const buf = Buffer.alloc(64 * 1024);
  const self: TestRecall = {
    fills: 0,
    marks: 0,
    errors: [],
    markPreLease(fd) {
      addInodeMark(group, fd, FAN_PRE_ACCESS);
      self.marks++;
    },
    markReleased(fd) {
      addInodeMark(group, fd, releasedMask('pre-content'));
    },
    unmark(fd) {
      removeInodeMark(group, fd);
      self.marks--;
    },
    stop() {
      poll.close();
      closeSync(group);
    },
  };
  async function handle(fd: number): Promise<void> {
    let answer = FAN_ALLOW;
    try {
      const rec = decodeRecord(fgetxattr(fd, XATTR_STATE));
      if (rec?.copy && (rec.state === 'released' || rec.state === 'partial')) {
        const data = await tiers.get(rec.copy.tier)!.get(rec.copy.key);
        if (data.length > 0) writeSync(fd, data, 0, data.length, 0);
        const ns = BigInt(rec.copy.mtimeNs);
        futimens(fd, { sec: 0, nsec: UTIME_OMIT }, { sec: ns / 1_000_000_000n, nsec: ns % 1_000_000_000n });
        fsetxattr(fd, XATTR_STATE, encodeRecord({ ...rec, state: 'archived' }));
        self.fills++;
      }
    } catch (e) {
      self.errors.push(String(e));
      answer = FAN_DENY_EIO;
    } finally {
      respond(group, fd, answer);
      closeSync(fd);
    }
  }
  const poll: PollHandle = pollReadable(group, () => {
    for (;;) {
      let n: number;
      try {
        n = readNb(group, buf);
      } catch (e) {
        self.errors.push(`read: ${String(e)}`);
        continue;
      }
      if (n <= 0) return;
      for (const ev of decodeEvents(buf, n)) {
        if (ev.fd < 0) continue;
        // Opens are allowed at once, like the real service does for ordinary openers:
        // filling at open time would deadlock an O_RDWR opener (measured).
        if (ev.mask & FAN_OPEN_PERM) {
          respond(group, ev.fd, FAN_ALLOW);
          closeSync(ev.fd);
        } else void handle(ev.fd);
      }
    }
  });
  return self;
}
