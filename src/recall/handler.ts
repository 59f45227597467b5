// Decides and performs the recall for one permission event; returns the answer.
// The service (service.ts) owns reading, the in-flight record and writing the answer.
//
// Rules (why: docs/recall.md):
// - Open events (FAN_OPEN_PERM): allow at once, except an exec open or an opener named
//   in `wholeFileFor` (sparse-aware copiers; not tar opening its own archive: opener.ts):
//   recall the whole file first. Content mode:
//   every open recalls the whole file.
// - FAN_PRE_ACCESS: reads and writes look alike. If the file still has the copy's size
//   and mtime, fill the chunks under the page-rounded range (+ read-ahead), allow.
//   Otherwise someone wrote or truncated it (O_TRUNC raises no event): recall whatever
//   the copy still covers below the current size, never past it, and the file ends
//   'dirty'.
// - All chunks resident: state 'archived' (or 'dirty'), resident map dropped, unmarked.
// - A record that says nothing needs recalling: unmark, allow. A released record without
//   a usable copy: EIO (never ALLOW over a hole that should hold data).
import { fstatSync } from 'node:fs';
import type { RecallSettings, TierTuning } from '../dsl/ast.js';
import { FAN_ALLOW, FAN_DENY_EIO, FAN_OPEN_EXEC_PERM, FAN_OPEN_PERM, removeInodeMark, type FanEvent, type GroupMode } from '../kernel/fanotify.js';
import { futimens, UTIME_OMIT } from '../kernel/libc.js';
import type { Logger } from '../log.js';
import { WHOLE_BY_RECORD_MAX, type StateRecord } from '../record/state-record.js';
import type { Tier } from '../tiers/tier.js';
import type { FdRef } from './fdref.js';
import { dropLostChunks, fillStream, mtimeSpec, streamGetBytes, Semaphore, skipHoleChunks, StaleFileError, type FillEnv } from './fill.js';
import { cachedResident, loadEntry, persistComplete, type CachedResident, type InodeEntry } from './inode.js';
import { wholeFileForOpener } from './opener.js';
import { commOf, pathOfFd } from './proc.js';
import { chunkSpan, clampToSize } from '../chunks/ranges.js';
import { feed, rebudget } from './readahead.js';
import { sumsCostOf, type SumsCost } from '../chunks/sums-fetch.js';
import { SyncQueue } from './sync-queue.js';
import { hashWhole, recordHash, wantsForeignHash } from './foreign-hash.js';
import { aheadWanted, RUN_BYTES, type Fed, type GrantMsg } from './fast-path.js';
import type { Marks } from './marks.js';

export interface HandlerDeps {
  groupFd: number;
  mode: GroupMode;
  tiers: Map<string, Tier>;
  tuningOf(tier: Tier): TierTuning;
  settings: RecallSettings;
  log: Logger;
  /** A file became whole and its final record is written (the catalog follows it). */
  onComplete?(dev: number, ino: number, record: StateRecord): void;
  /** The event thread's grants (fast-path.ts); none: every event comes here. */
  fast?: { post(m: GrantMsg): void };
  /** Filesystem marks (marks.ts); absent: inode marks only. */
  marks?: Marks;
}

/** A batch of read-ahead ended: its bytes, how long it took, the event fd (still open). */
export type AheadHook = (bytes: number, ms: number, fd: number) => void;
interface Ahead {
  onBytes(n: number): void;
  done?: AheadHook;
}

/** What one event did, for the recall log. */
export interface Outcome {
  response: number;
  bytes: number;
  whole: boolean;
}

/** Completion syncs at most two at once (sync-queue.ts); an open's own file jumps the queue. */
const SYNCS = new SyncQueue(2);
const MAX_STALE_RETRIES = 4;
/** Cached inodes kept; the oldest idle ones are dropped (their state is re-read from xattrs). */
const MAX_CACHED = 20_000;

export class RecallHandler {
  private readonly cache = new Map<string, InodeEntry>();
  private readonly sems = new Map<string, Semaphore>();
  private readonly background = new Set<Promise<void>>();
  /** Birth time of each cached entry's inode (see once()). */
  private readonly born = new WeakMap<InodeEntry, bigint>();
  /** Marks this handler removed (stale marks, files that became whole). */
  marksRemoved = 0;

  constructor(private readonly d: HandlerDeps) {}

  get cachedInodes(): number {
    return this.cache.size;
  }

  forget(id: string): void {
    this.drop(id);
  }

  /** Drops a cached entry; its grant is revoked first (the thread must not answer from a map no longer kept). */
  private drop(id: string): void {
    const e = this.cache.get(id);
    if (!e) return;
    if (e.granted !== undefined) {
      this.d.fast?.post({ t: 'revoke', id });
      e.granted = undefined;
    }
    this.cache.delete(id);
    this.d.fast?.post({ t: 'unhold', id });
  }

  /**
   * Keeps the event thread's view of `e` in step: a grant once it can answer from it, the
   * bits after fills, a revoke once the handler must see every event again (diverged, done).
   */
  private offer(e: InodeEntry): void {
    const sink = this.d.fast;
    if (!sink) return;
    const ok = this.cache.get(e.id) === e && e.fsChecked === true && !e.diverged && !e.mapUnstorable && e.resident.count() > 0 && !this.isDone(e);
    if (!ok) {
      if (e.granted !== undefined && this.cache.get(e.id) === e) sink.post({ t: 'revoke', id: e.id });
      e.granted = undefined;
      return;
    }
    const n = e.resident.count(); // bits only grow while an entry is cached (fill.ts undoes a set in the same tick)
    if (e.granted === n) return;
    const bits = e.resident.toBuffer();
    if (e.granted === undefined) {
      const tier = this.d.tiers.get(e.copy.tier);
      const readahead = tier ? this.d.tuningOf(tier).readahead : 0;
      const topUp = tier ? streamGetBytes(tier) : RUN_BYTES;
      const sums = sumsCostCached(e);
      sink.post({ t: 'grant', g: { id: e.id, size: e.expect.size, mtimeNs: e.expect.mtimeNs, chunk: e.copy.chunk, readahead, topUp, bits, ra: e.ra, ...(sums ? { sums } : {}) } });
    } else {
      sink.post({ t: 'bits', id: e.id, bits });
    }
    e.granted = n;
  }

  /** Chunk fetches under way for this inode (the engine must not punch it now). */
  fetching(id: string): boolean {
    return (this.cache.get(id)?.fetching.size ?? 0) > 0;
  }

  /** The cached resident map of this inode (a copy); null when none is cached. */
  cachedResident(id: string): CachedResident | null {
    const e = this.cache.get(id);
    return e ? cachedResident(e) : null;
  }

  private evict(): void {
    for (const [id, x] of this.cache) {
      if (this.cache.size <= MAX_CACHED * 0.9) break;
      if (x.fetching.size === 0) this.drop(id);
    }
  }

  /** Resolves when no read-ahead is running (for a clean stop). */
  async idle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** Resolves once nothing runs on this inode after an answer (its completion recorded, if it completed). */
  async settled(id: string): Promise<void> {
    const e = this.cache.get(id);
    while (e?.after && e.after.size > 0) await Promise.allSettled([...e.after]);
  }

  /** Runs `work` after the answer, holding the event fd; idle() and settled() wait for it. */
  private inBackground(e: InodeEntry, ref: FdRef, work: Promise<void>): void {
    ref.retain();
    const after = (e.after ??= new Set());
    const p: Promise<void> = work.finally(() => {
      ref.release();
      this.background.delete(p);
      after.delete(p);
    });
    this.background.add(p);
    after.add(p);
  }

  /**
   * `onBytes` counts every byte fetched (the event's and its read-ahead's); the event's own
   * bytes are in the Outcome, and each batch of read-ahead it starts reports its bytes
   * once done through `onAhead` (after the answer: the recall log's row of its own).
   * `fed`: the event thread's read-ahead result for this event (a granted inode), used instead of feeding here.
   */
  async handle(ev: FanEvent, ref: FdRef, onBytes: (n: number) => void, onAhead?: AheadHook, fed?: Fed): Promise<Outcome> {
    const out: Outcome = { response: FAN_DENY_EIO, bytes: 0, whole: false };
    const count = (n: number) => {
      out.bytes += n;
      onBytes(n);
    };
    const ahead: Ahead = { onBytes, ...(onAhead ? { done: onAhead } : {}) };
    for (let attempt = 0; ; attempt++) {
      try {
        out.response = await this.once(ev, ref, count, out, ahead, attempt === 0 ? fed : undefined);
        return out;
      } catch (e) {
        // The file changed while we fetched: re-decide with fresh facts (it is now diverged).
        if (!(e instanceof StaleFileError) || attempt >= MAX_STALE_RETRIES) throw e;
      }
    }
  }

  private async once(ev: FanEvent, ref: FdRef, onBytes: (n: number) => void, out: Outcome, ahead: Ahead, given?: Fed): Promise<number> {
    const fd = ref.fd;
    const st = fstatSync(fd, { bigint: true });
    const id = `${st.dev}:${st.ino}`;
    let e = this.cache.get(id);
    // Under a filesystem mark new files raise events too: a cached inode number may now be
    // another file (the released one was deleted and its number reused). Birth time tells.
    if (e && this.born.get(e) !== st.birthtimeNs) {
      this.drop(id);
      e = undefined;
    }
    if (!e) {
      const l = loadEntry(fd, id);
      if (l.kind === 'plain') {
        // Not released: silence its later events (ignore mark under a filesystem mark, or a
        // stale inode mark removed). Released while we looked: decide again (marks.ts).
        if (this.d.marks && !this.d.marks.notReleased(fd)) throw new StaleFileError('released while its event was decided');
        if (!this.d.marks) removeInodeMark(this.d.groupFd, fd);
        this.marksRemoved++;
        return FAN_ALLOW;
      }
      if (l.kind === 'broken') {
        this.d.log.error('recall impossible', { op: 'recall', fd, err: l.why });
        return FAN_DENY_EIO;
      }
      e = l.entry;
      given = undefined; // fed for an entry no longer cached
      this.cache.set(id, e);
      this.d.fast?.post({ t: 'hold', id }); // its opens are ours from now on (fast-path.ts)
      this.born.set(e, st.birthtimeNs);
      if (this.cache.size > MAX_CACHED) this.evict();
    }
    const tier = this.d.tiers.get(e.copy.tier);
    if (!tier) {
      this.d.log.error('recall: unknown tier', { op: 'recall', tier: e.copy.tier, key: e.copy.key });
      return FAN_DENY_EIO;
    }
    const tuning = this.d.tuningOf(tier);
    let sem = this.sems.get(tier.name);
    if (!sem) this.sems.set(tier.name, (sem = new Semaphore(Math.max(1, tuning.concurrency))));
    const env: FillEnv = { tier, tuning, sem, onBytes, log: this.d.log };

    const size = Number(st.size);
    const lost = e.fsChecked ? [] : await dropLostChunks(e, fd, env, size); // once per loaded entry
    if (lost.length > 0) this.d.log.warn('resident chunks lost by a crash (hole under the copy\'s data): fetched again', { op: 'recall', key: e.copy.key, chunks: lost.length });
    if (!e.diverged && (size !== e.expect.size || st.mtimeNs !== e.expect.mtimeNs)) {
      this.d.log.info('released file was written or truncated: recalling the rest, it becomes dirty', {
        op: 'recall',
        key: e.copy.key,
        size,
        expectSize: e.expect.size,
      });
      e.diverged = true;
      e.expect = { size, mtimeNs: st.mtimeNs };
    } else if (e.diverged) {
      e.expect = { size, mtimeNs: st.mtimeNs };
    }
    if (e.diverged) e.keep = Math.min(e.keep, size);

    const isOpen = (ev.mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM)) !== 0;
    const wholeAtOpen =
      isOpen && (this.d.mode === 'content' || (ev.mask & FAN_OPEN_EXEC_PERM) !== 0 || wholeFileForOpener(this.d.settings.wholeFileFor, commOf(ev.pid), ev.pid, () => pathOfFd(fd)));
    if (e.diverged || e.mapUnstorable || wholeAtOpen || (!isOpen && !ev.range)) {
      out.whole = true;
      await this.fill(e, ref, env, { start: 0, end: e.keep });
    } else if (isOpen) {
      return FAN_ALLOW; // content untouched yet: the reads will say what they need
    } else {
      // A count of 0 is "to end of file": a clone of the whole file (FICLONE, FICLONERANGE
      // with src_length 0) raises one such event (a 0-byte read() too: it costs a recall).
      const r = ev.range!.count === 0 ? { offset: ev.range!.offset, count: Math.max(0, size - ev.range!.offset) } : ev.range!;
      // A small dense file is filled whole at its first read: one GET, checked against the
      // record's SHA-256 (no sums GET: fill.ts), instead of a GET for the sums and one per run.
      const small = !e.copy.sparse && e.copy.size <= WHOLE_BY_RECORD_MAX && e.resident.count() === 0;
      const want = small ? { start: 0, end: e.copy.size } : clampToSize(r.offset, r.count, Math.min(size, e.copy.size));
      // The window leaves room for the sums its chunks need (readahead.ts): the event thread
      // feeds without them, so its result is budgeted again here.
      const ra = { chunk: e.copy.chunk, max: tuning.readahead, sums: sumsCostCached(e) };
      const fed = given ?? feed(e.ra, r.offset, r.offset + r.count, ra);
      e.ra = fed.state;
      const next = given ? rebudget(given, ra) : fed.ahead;
      const aheadBytes = clampToSize(next.offset, next.length, e.copy.size);
      if (aheadBytes) this.readAhead(e, ref, { ...env, onBytes: ahead.onBytes }, aheadBytes, ahead.done);
      if (want) await this.fill(e, ref, env, want);
      // No room for the map: a write may follow this answer, so nothing may stay missing.
      if (e.mapUnstorable) await this.fill(e, ref, env, { start: 0, end: e.keep });
      else if (e.ra.window === 0 && restWanted(e, tuning.readahead)) {
        e.rest = true;
        this.readAhead(e, ref, { ...env, onBytes: ahead.onBytes }, { start: 0, end: e.copy.size }, ahead.done);
      }
    }
    // A read's completion (one fdatasync of the whole file, then the record) runs after
    // the answer: the reader needs the bytes, not their durability (a crash before the
    // record only costs a re-fetch: chunks/fs-resident.ts). An open waits for it: the
    // opener must see the final ctime (tar creating an archive checks it), and an exec
    // needs the event fd, open for writing, closed before execve (else ETXTBSY).
    if (isOpen) await this.finishIfComplete(e, ref, true);
    else this.finishLater(e, ref);
    this.offer(e);
    return FAN_ALLOW;
  }

  /** Fills every missing chunk under the byte range; resolves when all are durable. */
  private async fill(e: InodeEntry, ref: FdRef, env: FillEnv, bytes: { start: number; end: number }): Promise<void> {
    if (bytes.end <= bytes.start) return;
    // A sparse copy's all-hole chunks need nothing (fill.ts skipHoleChunks).
    const missing = await skipHoleChunks(e, e.resident.missing(chunkSpan(bytes, e.copy.chunk)), ref.fd, env);
    if (missing.length === 0) return;
    const results = await Promise.allSettled(this.startRuns(e, missing, ref, env));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * The fetches that cover `missing` (ascending chunk indices): those already under way,
   * and new runs of consecutive chunks, one GET each, of at most `getBytes` (several in
   * flight, up to the tier's concurrency), each committed in pieces of RUN_BYTES.
   */
  private startRuns(e: InodeEntry, missing: number[], ref: FdRef, env: FillEnv, getBytes = RUN_BYTES): Promise<void>[] {
    const out = new Set<Promise<void>>();
    const piece = Math.max(1, Math.floor(RUN_BYTES / e.copy.chunk));
    const most = Math.max(piece, Math.floor(getBytes / e.copy.chunk));
    for (let k = 0; k < missing.length; ) {
      const i = missing[k]!;
      const running = e.fetching.get(i);
      if (running) {
        out.add(running);
        k++;
        continue;
      }
      let j = k + 1;
      while (j < missing.length && j - k < most && missing[j] === missing[j - 1]! + 1 && !e.fetching.has(missing[j]!)) j++;
      for (const p of fillStream(e, i, missing[j - 1]! + 1, piece, ref, env)) out.add(p);
      k = j;
    }
    return [...out];
  }

  /** Background fetches; they keep the event fd open (FdRef) after the answer. */
  private readAhead(e: InodeEntry, ref: FdRef, base: FillEnv, bytes: { start: number; end: number }, done?: AheadHook): void {
    const missing = e.resident.missing(chunkSpan(bytes, e.copy.chunk)).filter((i) => !e.fetching.has(i));
    if (!aheadWanted(missing.length, e.copy.chunk, bytes, e.copy.size, streamGetBytes(base.tier))) return;
    // This batch's bytes, reported once when its last run ends (every fetched byte counted once).
    const t0 = Date.now();
    let got = 0;
    const env: FillEnv = { ...base, onBytes: (n) => ((got += n), base.onBytes(n)) };
    const runs = this.startRuns(e, missing, ref, env, streamGetBytes(env.tier)).map((run) => {
      const work = run
        .then(() => (this.offer(e), this.finishIfComplete(e, ref)))
        .catch((err: unknown) => this.d.log.debug('read-ahead failed', { op: 'recall', key: e.copy.key, err }));
      this.inBackground(e, ref, work);
      return work;
    });
    if (done && runs.length > 0) {
      // Held like a run (idle() waits for it): the hook names the file through the event fd.
      const report = Promise.allSettled(runs).then(() => {
        if (got > 0) done(got, Date.now() - t0, ref.fd);
      });
      this.inBackground(e, ref, report.catch((err: unknown) => this.d.log.warn('read-ahead not reported', { op: 'recall', key: e.copy.key, err })));
    }
  }

  /** finishIfComplete after the answer, holding the event fd; idle() waits for it. */
  private finishLater(e: InodeEntry, ref: FdRef): void {
    if (!this.isDone(e) || e.finishing || e.hashing) return; // nothing to do, or under way
    const work = this.finishIfComplete(e, ref).catch((err: unknown) => this.d.log.warn('recall complete but not recorded', { op: 'recall', key: e.copy.key, err }));
    this.inBackground(e, ref, work);
  }

  /** Every chunk the file still needs from its copy is resident. */
  private isDone(e: InodeEntry): boolean {
    const limit = e.keep;
    return limit >= e.copy.size ? e.resident.complete() : e.resident.missing(chunkSpan({ start: 0, end: limit }, e.copy.chunk)).length === 0;
  }

  /** An imported file just became whole: its SHA-256 first (foreign-hash.ts), then finish. */
  private hashForeign(e: InodeEntry, ref: FdRef): void {
    if (e.hashing) return;
    e.hashing = true;
    const work = hashWhole(ref.fd, e.expect)
      .then(async (sha) => {
        if (sha) recordHash(e, sha);
        e.hashed = true;
        await this.finishIfComplete(e, ref);
      })
      .catch((err: unknown) => this.d.log.warn('hash of an imported file failed', { op: 'recall', key: e.copy.key, err }))
      .finally(() => {
        e.hashing = false;
      });
    this.inBackground(e, ref, work);
  }

  /**
   * All data local: sync it (fills are not synced one by one: fill.ts), then record the
   * final state and drop the mark (later reads raise no event). An imported file is hashed
   * first (hashForeign, which comes back here).
   */
  private async finishIfComplete(e: InodeEntry, ref: FdRef, urgent = false): Promise<void> {
    const fd = ref.fd;
    const isDone = () => this.isDone(e);
    if (!isDone() || this.cache.get(e.id) !== e) return;
    if (wantsForeignHash(e) && !e.hashed) return this.hashForeign(e, ref); // finishes when hashed
    // One sync per file; a reader whose event completes it waits for the record too.
    if (e.finishing) {
      if (urgent) e.syncNow?.();
      return e.finishing;
    }
    const job = SYNCS.sync(fd);
    if (urgent) job.now();
    e.syncNow = job.now;
    const synced = job.done.then(
      () => true,
      (err: unknown) => {
        this.d.log.warn('recall complete but fdatasync failed: left partial', { op: 'recall', key: e.copy.key, err });
        return false;
      },
    );
    e.finishing = synced.then((ok) => {
      e.finishing = undefined;
      e.syncNow = undefined;
      if (ok) this.recordComplete(e, fd, isDone);
    });
    return e.finishing;
  }

  /** After the sync: re-decided in one tick with the record write. */
  private recordComplete(e: InodeEntry, fd: number, isDone: () => boolean): void {
    if (!isDone() || this.cache.get(e.id) !== e) return;
    if (!e.diverged) {
      const st = fstatSync(fd, { bigint: true });
      if (Number(st.size) !== e.expect.size || st.mtimeNs !== e.expect.mtimeNs) return; // re-decided next event
    }
    try {
      persistComplete(fd, e);
      removeInodeMark(this.d.groupFd, fd);
      this.marksRemoved++;
      futimens(fd, { sec: 0, nsec: UTIME_OMIT }, mtimeSpec(e.expect.mtimeNs));
      this.drop(e.id);
      if (this.d.onComplete) {
        const done = fstatSync(fd);
        this.d.onComplete(done.dev, done.ino, e.record);
      }
      this.d.log.debug('recall complete', { op: 'recall', key: e.copy.key, state: e.record.state });
    } catch (err) {
      // The data is whole and durable either way; the next event retries the bookkeeping.
      this.d.log.warn('recall complete but state not recorded', { op: 'recall', key: e.copy.key, err });
    }
  }
}

/**
 * The rest of the file is worth fetching now, once, in the background: at least half of it
 * is here or on its way, and what is missing fits in one read-ahead window (`window`: the
 * tier's readahead, so the rest queues no more GETs than a stream's window does). Asked at
 * a read outside any stream (a stream's own window gets there as fast). Every read of a
 * marked file is an event, resident or not (SQLite's 4 KiB pages: one each, about 25 us);
 * a whole file is unmarked. What it costs: at most as much again as was fetched.
 */
export function restWanted(e: Pick<InodeEntry, 'copy' | 'resident' | 'fetching' | 'diverged' | 'rest'>, window: number): boolean {
  if (e.rest || e.diverged || e.copy.sparse || e.resident.complete()) return false;
  const have = e.resident.count() + e.fetching.size;
  return have * 2 >= e.resident.chunks && (e.resident.chunks - have) * e.copy.chunk <= window;
}

/** The entry's sums cost, worked out once (null: a copy without sums, also kept). */
function sumsCostCached(e: InodeEntry): SumsCost | undefined {
  if (e.sumsCost === undefined) e.sumsCost = sumsCostOf(e.copy) ?? null;
  return e.sumsCost ?? undefined;
}
