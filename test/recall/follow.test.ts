// Following the reader (src/recall/follow.ts, the pure rules) and the kernel call it rides on
// (moveThreadTo in src/kernel/libc.ts, the real sched_setaffinity on this thread).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { spawnSync } from 'node:child_process';
import { EVERY_MS, Follower, LATE_POLLS, STREAK, type FollowOps } from '../../src/recall/follow.js';
import { currentCpu, moveThreadTo } from '../../src/kernel/libc.js';
import { cpuOf } from '../../src/recall/proc.js';

/** Ops with a settable clock and CPUs; `moves` records each move asked for. */
function fake(reader: number, mine: number, allowed = true): FollowOps & { t: number; moves: number[]; looks: number } {
  const o = {
    t: 0,
    moves: [] as number[],
    looks: 0,
    now: () => o.t,
    readerCpu: () => (o.looks++, reader),
    myCpu: () => mine,
    moveTo: (cpu: number) => (o.moves.push(cpu), allowed),
  };
  return o;
}

test('a streak of late events moves the thread onto the reader CPU, once per interval', () => {
  const ops = fake(1, 0);
  const f = new Follower(ops);
  for (let i = 1; i < STREAK; i++) assert.equal(f.found(42, LATE_POLLS), false);
  assert.equal(ops.looks, 0, 'no /proc read before the streak is complete');
  assert.equal(f.found(42, LATE_POLLS), true);
  assert.deepEqual(ops.moves, [1]);
  // A second streak within EVERY_MS only counts; after it, a look again.
  for (let i = 0; i < STREAK; i++) f.found(42, LATE_POLLS + 5);
  assert.deepEqual(ops.moves, [1]);
  ops.t += EVERY_MS;
  for (let i = 0; i < STREAK; i++) f.found(42, LATE_POLLS);
  assert.deepEqual(ops.moves, [1, 1]);
});

test('events found at once, a blocking wait, or a reader on this CPU move nothing', () => {
  const ops = fake(1, 0);
  const f = new Follower(ops);
  for (let i = 0; i < 10 * STREAK; i++) {
    f.found(7, LATE_POLLS);
    if (i % (STREAK - 1) === 0) f.found(7, LATE_POLLS - 1); // same-CPU reader: first polls find it
  }
  for (let i = 0; i < 10 * STREAK; i++) {
    f.found(7, LATE_POLLS);
    if (i % (STREAK - 1) === 0) f.reset();
  }
  assert.equal(ops.looks, 0);
  const same = fake(0, 0);
  const g = new Follower(same);
  for (let i = 0; i < STREAK; i++) g.found(7, 50);
  assert.equal(same.looks, 1);
  assert.deepEqual(same.moves, []);
  const gone = fake(-1, 0);
  const h = new Follower(gone);
  for (let i = 0; i < STREAK; i++) h.found(7, 50);
  assert.deepEqual(gone.moves, []);
});

test('cpuOf reads where a process last ran; -1 once it is gone', () => {
  const cpu = cpuOf(process.pid);
  assert.ok(cpu >= 0 && cpu < cpus().length, `cpu ${cpu}`);
  assert.equal(cpuOf(2 ** 22 + 12345), -1);
});

/** This thread's allowed CPUs as the kernel reports them. */
const allowed = (): string => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/thread-self/status', 'utf8'))![1]!;

test('moveThreadTo runs this thread on the CPU asked for and leaves its affinity as it was', { skip: cpus().length < 2 && 'one CPU' }, () => {
  const before = allowed();
  for (const cpu of [1, 0, 1]) {
    assert.equal(moveThreadTo(cpu), true);
    assert.equal(currentCpu(), cpu);
    assert.equal(allowed(), before);
  }
});

test('moveThreadTo leaves a CPU outside the affinity alone (an admin taskset holds)', { skip: cpus().length < 2 && 'one CPU' }, () => {
  // taskset -p on our pid narrows the main thread (this one) only.
  const before = allowed();
  const r = spawnSync('taskset', ['-p', '-c', '0', String(process.pid)]);
  assert.equal(r.status, 0, String(r.stderr));
  try {
    assert.equal(allowed(), '0');
    assert.equal(moveThreadTo(1), false);
    assert.equal(allowed(), '0');
    assert.equal(currentCpu(), 0);
  } finally {
    spawnSync('taskset', ['-p', '-c', before, String(process.pid)]);
  }
  assert.equal(allowed(), before);
});
