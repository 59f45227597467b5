// How released files get their pre-content events: one filesystem mark per managed
// filesystem (the default), or one inode mark per released file (the fallback).
//
// Why (issue 14, measured in bench 8, docs/architecture.md "Marks"): an inode mark pins
// its inode in the inode cache, about 1 KiB of kernel memory per released file for as
// long as the daemon runs. A filesystem mark costs nothing per file; every other file on
// that filesystem pays one event the first time it is opened or read after entering the
// inode cache, after which an evictable ignore mark (which pins nothing) silences it.
//
// Rules:
// - Never a filesystem mark on the root filesystem, nor on the one holding the daemon's
//   state directory, nor in content mode (older kernels: FAN_OPEN_PERM only), nor where the
//   kernel refuses it (tmpfs): inode marks there.
// - A released or partial file never carries an ignore mark, at any kill point. The handler
//   adds one only while it holds the event's fd (no lease can be taken meanwhile), and reads
//   the record again after adding it: released by then (import: record first, then
//   `released()`) means the mark comes off again and the event is decided as released.
// - The engine never adds one. Its release works through a no-notify fd (the event fd of its
//   own open, engine/migrate-file.ts), so its reads and punch raise nothing without one. It
//   takes any ignore mark off before that open (else the open raises no event to capture)
//   and again once it holds the lease (the handler may have added one in between); under the
//   lease nobody can add one (an event fd would break the lease: we give up before the
//   punch, or the record already says released and the handler takes it off again). So a
//   worker killed anywhere leaves no ignore mark on a punched file: a reader in the gap
//   before the next worker waits for its event (test/daemon/fs-marks-kill.test.ts).
// - The event thread (event-thread.ts) silences never-released files itself under the same
//   rule (MarksView: it holds the event's fd, reads the record again after the mark); it
//   shares the count of ignore marks and the filesystems under our mark with this class
//   through one SharedArrayBuffer (held: Atomics; a filesystem is published after its dev).
// - Ignore marks are a cache: every worker start flushes them anyway, and re-places the
//   inode marks of fallback filesets in the same step.
// - They are also a shared budget: fs.fanotify.max_user_marks counts the marks of every
//   group of the user (root: other daemons, other tools' watchers). A tree of new files
//   once took all 205k here, and every other group's fanotify_mark failed with ENOSPC
//   (a bench daemon's releases). So a group holds at most a quarter of the limit
//   (TIER_IGNORE_MARKS sets it); past that a file goes without one and raises an event
//   per open, and the count is re-read from fdinfo (evictions are not reported).
import { fstatSync, lstatSync, readFileSync, statSync } from 'node:fs';
import {
  addIgnoreMark,
  addInodeMark,
  addPathMark,
  countIgnoreMarks,
  FAN_MARK_FILESYSTEM,
  FAN_OPEN_EXEC_PERM,
  FAN_OPEN_PERM,
  FAN_PRE_ACCESS,
  flushInodeMarks,
  releasedMask,
  removeIgnoreMark,
  removeInodeMark,
  type GroupMode,
} from '../kernel/fanotify.js';
import { fgetxattr } from '../kernel/libc.js';
import { faultPoint } from '../engine/fault.js';
import { decodeRecord, XATTR_STATE } from '../record/state-record.js';

/** What a filesystem mark watches; ignore marks silence the same events. */
export const FS_MASK = FAN_PRE_ACCESS | FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM;

export type Scheme = 'filesystem' | 'inode';

/** TIER_MARKS=inode forces the fallback everywhere (bench 8's baseline, debugging). */
export function wantedScheme(mode: GroupMode, env: NodeJS.ProcessEnv = process.env): Scheme {
  return mode === 'pre-content' && env.TIER_MARKS !== 'inode' ? 'filesystem' : 'inode';
}

const isReleased = (fd: number): boolean => {
  const s = decodeRecord(fgetxattr(fd, XATTR_STATE))?.state;
  return s === 'released' || s === 'partial';
};

/** Ignore marks one group may hold: TIER_IGNORE_MARKS, else a quarter of the user's limit. */
export function ignoreMarkBudget(env: NodeJS.ProcessEnv = process.env): number {
  const set = env.TIER_IGNORE_MARKS;
  if (set !== undefined && /^\d+$/.test(set)) return Number(set);
  try {
    return Math.floor(Number(readFileSync('/proc/sys/fs/fanotify/max_user_marks', 'utf8')) / 4);
  } catch {
    return 16384;
  }
}

/** The group's ignore marks are re-counted at most this often once the budget is reached. */
const RECOUNT_MS = 10_000;

/** Filesystems the event thread knows of (more: their files' events go to the handler). */
const SHARED_DEVS = 64;
const I_HELD = 0;
const I_DEVS = 1;

/** One ignore mark fewer, never below 0 (the main thread and the event thread both count). */
function dropOne(held: Int32Array): void {
  for (;;) {
    const v = Atomics.load(held, I_HELD);
    if (v <= 0 || Atomics.compareExchange(held, I_HELD, v, v - 1) === v) return;
  }
}

/**
 * Adds an ignore mark to the file behind the event fd `fd` within the budget; re-reads the
 * record after it. 'ignored': done; 'released': released meanwhile, the mark is off again;
 * 'none': no mark (budget or the user's mark limit reached).
 */
function ignore(groupFd: number, fd: number, held: Int32Array, budget: number): 'ignored' | 'released' | 'none' {
  if (Atomics.load(held, I_HELD) >= budget) return 'none';
  try {
    faultPoint('add-ignore-mark'); // FAULT INJECTION (tests): ENOSPC, the mark limit reached
    addIgnoreMark(groupFd, fd, FS_MASK);
  } catch (e) {
    // ENOSPC: the user's fanotify mark limit (fs.fanotify.max_user_marks, ~205k here) is
    // reached, e.g. by a tree of new files still in the inode cache. An ignore mark only
    // spares later events: go without it (this file raises one event per open until
    // marks are evicted), never fail the reader's open.
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    return 'none';
  }
  Atomics.add(held, I_HELD, 1);
  let released = true; // until the record says otherwise: a throw takes the mark off again
  try {
    released = isReleased(fd);
  } finally {
    // A released file must never keep an ignore mark: its reads would raise no event (zeros).
    if (released && removeIgnoreMark(groupFd, fd, FS_MASK)) dropOne(held);
  }
  return released ? 'released' : 'ignored';
}

/** What the event thread gets of Marks: the shared buffer and the budget. */
export interface SharedMarks {
  buf: SharedArrayBuffer;
  budget: number;
}

/** The event thread's side of Marks: silences a never-released file under our filesystem mark. */
export class MarksView {
  private readonly ints: Int32Array;
  private readonly devs: Float64Array;

  constructor(
    private readonly groupFd: number,
    private readonly s: SharedMarks,
  ) {
    this.ints = new Int32Array(s.buf, 0, 2);
    this.devs = new Float64Array(s.buf, 8, SHARED_DEVS);
  }

  /** Our filesystem mark covers st_dev `dev`. */
  covers(dev: number): boolean {
    const n = Atomics.load(this.ints, I_DEVS);
    for (let i = 0; i < n; i++) if (this.devs[i] === dev) return true;
    return false;
  }

  /** Marks.notReleased for the thread: true when silenced; false: the handler decides the event (budget, limit, or released meanwhile). */
  silence(fd: number): boolean {
    return ignore(this.groupFd, fd, this.ints, this.s.budget) === 'ignored';
  }
}

export class Marks {
  /** st_dev of the filesystems that carry our filesystem mark. */
  private readonly devs = new Set<number>();
  /** [I_HELD]: ignore marks we believe the group holds (an upper bound: the kernel evicts silently); [I_DEVS]: devs published to the thread. */
  private readonly buf = new SharedArrayBuffer(8 + 8 * SHARED_DEVS);
  private readonly ints = new Int32Array(this.buf, 0, 2);
  private recountAfter = 0;
  private readonly budget = ignoreMarkBudget();

  constructor(
    private readonly groupFd: number,
    private readonly mode: GroupMode,
    private readonly scheme: Scheme = wantedScheme(mode),
  ) {}

  /**
   * Puts the filesystem mark on the filesystem holding `dir` (a fileset's root or its
   * backing) when allowed; returns the scheme that filesystem uses. Adding it twice (a
   * restarted worker, the group of a takeover) changes nothing.
   */
  watch(dir: string, ownDirs: readonly string[] = []): { scheme: Scheme; why?: string } {
    if (this.scheme === 'inode') return { scheme: 'inode', why: this.mode === 'content' ? 'content mode' : 'TIER_MARKS=inode' };
    const dev = statSync(dir).dev;
    if (this.devs.has(dev)) return { scheme: 'filesystem' };
    if (dev === statSync('/').dev) return { scheme: 'inode', why: 'on the root filesystem' };
    // The daemon's own files (catalog, in-flight record) are opened synchronously on the
    // event loop that answers the events: under our own filesystem mark, a deadlock.
    const own = ownDirs.find((d) => statSync(d).dev === dev);
    if (own !== undefined) return { scheme: 'inode', why: `the state directory ${own} is on this filesystem` };
    try {
      addPathMark(this.groupFd, dir, FS_MASK, FAN_MARK_FILESYSTEM);
    } catch (e) {
      return { scheme: 'inode', why: `filesystem mark refused: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
    }
    this.devs.add(dev);
    const n = Atomics.load(this.ints, I_DEVS);
    if (n < SHARED_DEVS) {
      new Float64Array(this.buf, 8, SHARED_DEVS)[n] = dev;
      Atomics.store(this.ints, I_DEVS, n + 1); // after the dev: the thread reads up to n
    }
    return { scheme: 'filesystem' };
  }

  /** A filesystem mark covers the inode behind fd. */
  covers(fd: number): boolean {
    return this.devs.size > 0 && this.devs.has(fstatSync(fd).dev);
  }

  /** A filesystem mark covers the filesystem `path` is on (lstat: no event); missing: false. */
  coversPath(path: string): boolean {
    if (this.devs.size === 0) return false;
    try {
      return this.devs.has(lstatSync(path).dev);
    } catch {
      return false;
    }
  }

  /** For the event thread (MarksView). */
  get shared(): SharedMarks {
    return { buf: this.buf, budget: this.budget };
  }

  get filesystems(): number {
    return this.devs.size;
  }

  /** Worker start: drops every ignore mark (and inode mark) of the group; the caller re-marks fallback files. */
  flushIgnores(): void {
    flushInodeMarks(this.groupFd);
    Atomics.store(this.ints, I_HELD, 0);
  }

  private removeIgnore(fd: number): void {
    if (removeIgnoreMark(this.groupFd, fd, FS_MASK)) dropOne(this.ints);
  }

  /** At the budget: learn how many the kernel has evicted since, at most every RECOUNT_MS. */
  private recount(): void {
    const now = Date.now();
    if (now < this.recountAfter) return;
    this.recountAfter = now + RECOUNT_MS;
    countIgnoreMarks(this.groupFd).then(
      (n) => Atomics.store(this.ints, I_HELD, n),
      () => {},
    );
  }

  /** Ignore marks held (as counted) and the most allowed. */
  ignoreMarks(): { held: number; budget: number } {
    return { held: Atomics.load(this.ints, I_HELD), budget: this.budget };
  }

  /** The file is released (after the punch / a new import): its events must reach us. */
  released(fd: number): void {
    if (this.covers(fd)) this.removeIgnore(fd);
    else addInodeMark(this.groupFd, fd, releasedMask(this.mode));
  }

  /** The file is whole again (or never was released). */
  unmark(fd: number): void {
    if (!this.covers(fd)) removeInodeMark(this.groupFd, fd);
  }

  /**
   * The engine, before its lease (release): under a filesystem mark, any ignore mark off (the
   * open that gives the engine its no-notify fd must raise its event); else the pre-content
   * inode mark (engine/marker.ts says why not the open events yet).
   */
  preLease(fd: number): void {
    if (this.covers(fd)) this.removeIgnore(fd);
    else if (this.mode === 'pre-content') addInodeMark(this.groupFd, fd, FAN_PRE_ACCESS);
  }

  /** The engine holds its lease (release): under a filesystem mark, an ignore mark the handler added since preLease comes off. */
  leased(fd: number): void {
    if (this.covers(fd)) this.removeIgnore(fd);
  }

  /**
   * The handler found the file not released: silence its later events. False when it was
   * released meanwhile (the ignore mark is taken off again: decide the event as released).
   */
  notReleased(fd: number): boolean {
    if (!this.covers(fd)) {
      removeInodeMark(this.groupFd, fd); // a stale inode mark: the file is whole
      return true;
    }
    const r = ignore(this.groupFd, fd, this.ints, this.budget);
    if (r === 'none') {
      if (Atomics.load(this.ints, I_HELD) >= this.budget) this.recount();
      this.unignored++;
      return !isReleased(fd);
    }
    return r === 'ignored';
  }

  /** Files let through with no ignore mark: the mark limit or our budget reached (notReleased). */
  unignored = 0;
}
