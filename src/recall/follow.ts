// Following the reader: when a reader keeps preading resident ranges from another CPU, the
// event thread moves itself onto the reader's CPU. Pure: the clock, /proc and the
// affinity calls come in as ops (event-thread.ts gives the real ones).
//
// Rules (why: docs/recall.md, "Adaptive polling"):
// - Only events answered here and found by adaptive polling count, and only when they came
//   late: after `LATE_POLLS` or more empty polls. A reader on this thread's CPU runs
//   during the first yield, so its next event is there at the first poll; a reader that
//   needs that many polls is waking up on another CPU, which costs every round trip a
//   cross-CPU wake-up (bench 5: ~18-28 us against ~5 us on one CPU).
// - A streak of `STREAK` late events in a row, and at most one look every `EVERY_MS`:
//   one /proc read (tens of us) per look, never per event; a burst of unrelated readers
//   resets the streak.
// - The move never widens or narrows the thread's affinity (libc.ts moveThreadTo): a CPU
//   outside it (taskset) is left alone, and the scheduler stays free to move it again.

/** Empty polls before the event that make it late. */
export const LATE_POLLS = 3;
/** Late events in a row before this thread looks where the reader runs. */
export const STREAK = 32;
/** At most one look per this many ms. */
export const EVERY_MS = 100;

export interface FollowOps {
  now(): number; // ms
  /** The CPU `pid` last ran on, -1 if unknown. */
  readerCpu(pid: number): number;
  /** The CPU this thread runs on. */
  myCpu(): number;
  /** Moves this thread onto `cpu` within its affinity; false if the affinity excludes it. */
  moveTo(cpu: number): boolean;
}

export class Follower {
  private streak = 0;
  private lastLook = -Infinity;

  constructor(private readonly ops: FollowOps) {}

  /**
   * An event of `pid` answered here, found `polls` empty polls after this thread's last
   * answer. True when this call moved the thread.
   */
  found(pid: number, polls: number): boolean {
    if (polls < LATE_POLLS) {
      this.streak = 0;
      return false;
    }
    if (++this.streak < STREAK) return false;
    const now = this.ops.now();
    if (now - this.lastLook < EVERY_MS) return false;
    this.lastLook = now;
    this.streak = 0;
    const cpu = this.ops.readerCpu(pid);
    if (cpu < 0 || cpu === this.ops.myCpu()) return false;
    return this.ops.moveTo(cpu);
  }

  /** This thread blocked (no event within the polling window): the next one starts a new streak. */
  reset(): void {
    this.streak = 0;
  }
}
