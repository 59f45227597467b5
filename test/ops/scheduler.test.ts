import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler, entriesFromPolicy, systemClock, type Clock, type ScheduleEntry, type Trigger } from '../../src/schedule/scheduler.js';
import type { Usage } from '../../src/schedule/usage.js';
import type { PolicyFile, Span } from '../../src/dsl/ast.js';
import { FakeClock } from './fake-clock.js';

const T = (iso: string) => Date.parse(iso);
const MIN = 60_000;

function collectingLogger() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

function cronEntry(policy: string, cron: string): ScheduleEntry {
  return { policy, schedule: { cron, tz: 'UTC' }, checkIntervalMs: 5 * MIN, roots: ['/data'] };
}

describe('scheduler (fake clock)', () => {
  test('runs a policy at each cron time, with the due time', async () => {
    const clock = new FakeClock(T('2026-01-01T00:01:00Z'));
    const runs: [string, Trigger, number][] = [];
    const s = new Scheduler({ clock, run: async (p, t) => void runs.push([p, t, clock.now()]) });
    s.update([cronEntry('cold', '*/5 * * * *')]);
    assert.equal(s.status()[0]!.nextRunAt, T('2026-01-01T00:05:00Z'));
    await clock.advance(3 * MIN + 59_999);
    assert.equal(runs.length, 0);
    await clock.advance(1);
    await clock.advance(10 * MIN);
    assert.deepEqual(
      runs.map(([p, t]) => [p, t.kind === 'schedule' ? new Date(t.due).toISOString() : t.kind]),
      [
        ['cold', '2026-01-01T00:05:00.000Z'],
        ['cold', '2026-01-01T00:10:00.000Z'],
        ['cold', '2026-01-01T00:15:00.000Z'],
      ],
    );
    assert.equal(s.status()[0]!.runs, 3);
    await s.stop();
    assert.equal(clock.pending, 0);
  });

  test('a run still going when the next is due is skipped and logged; no overlap', async () => {
    const clock = new FakeClock(T('2026-01-01T00:00:30Z'));
    const { lines, logger } = collectingLogger();
    let active = 0;
    let maxActive = 0;
    const finishers: (() => void)[] = [];
    const s = new Scheduler({
      clock,
      logger,
      run: () => {
        active++;
        maxActive = Math.max(maxActive, active);
        return new Promise<void>((r) => finishers.push(() => (active--, r())));
      },
    });
    s.update([cronEntry('slow', '* * * * *')]);
    await clock.advance(30_000); // 00:01 starts run 1
    await clock.advance(3 * MIN); // 00:02, 00:03, 00:04 due while run 1 goes
    assert.equal(finishers.length, 1);
    assert.equal(s.status()[0]!.skipped, 3);
    assert.equal(lines.filter((l) => l.level === 'warn' && /skipped/.test(l.msg)).length, 3);
    finishers[0]!();
    await clock.advance(MIN); // 00:05 runs again
    assert.equal(finishers.length, 2);
    assert.equal(maxActive, 1);
    finishers[1]!();
    await s.stop();
  });

  test('a timer that fires early is re-armed; the slot runs once, on time', async () => {
    const fake = new FakeClock(T('2026-01-01T00:00:00Z'));
    // FAKE drift: every timer is asked for 7 ms less than requested.
    const early: Clock = { now: () => fake.now(), setTimeout: (fn, ms) => fake.setTimeout(fn, Math.max(1, ms - 7)), clearTimeout: (h) => fake.clearTimeout(h) };
    const at: number[] = [];
    const s = new Scheduler({ clock: early, run: async () => void at.push(fake.now()) });
    s.update([cronEntry('p', '* * * * *')]);
    await fake.advance(2 * MIN);
    assert.deepEqual(at, [T('2026-01-01T00:01:00Z'), T('2026-01-01T00:02:00Z')]);
    await s.stop();
  });

  test('slots missed during a clock jump are not replayed', async () => {
    const clock = new FakeClock(T('2026-01-01T00:00:00Z'));
    let n = 0;
    const s = new Scheduler({ clock, run: async () => void n++ });
    s.update([cronEntry('p', '* * * * *')]);
    clock.jump(60 * MIN); // suspend/resume: an hour passes without timers firing
    await clock.advance(1);
    assert.equal(n, 1);
    assert.equal(s.status()[0]!.nextRunAt, T('2026-01-01T01:01:00Z'));
    await s.stop();
  });

  test('a failing run is recorded and logged; the schedule goes on', async () => {
    const clock = new FakeClock(T('2026-01-01T00:00:00Z'));
    const { lines, logger } = collectingLogger();
    let n = 0;
    const s = new Scheduler({
      clock,
      logger,
      run: async () => {
        if (++n === 1) throw new Error('tier cold: put "k": Unavailable');
      },
    });
    s.update([cronEntry('p', '* * * * *')]);
    await clock.advance(MIN);
    assert.equal(s.status()[0]!.last?.outcome, 'failed');
    assert.match(s.status()[0]!.last?.error ?? '', /Unavailable/);
    assert.ok(lines.some((l) => l.level === 'error' && l.fields?.policy === 'p'));
    await clock.advance(MIN);
    assert.equal(n, 2);
    assert.equal(s.status()[0]!.last?.outcome, 'ok');
    await s.stop();
  });

  test('watermark: polls every check interval, runs only above high', async () => {
    const clock = new FakeClock(T('2026-01-01T00:00:00Z'));
    let pct = 50;
    const probed: string[] = [];
    const usage = async (root: string): Promise<Usage> => (probed.push(root), { percent: pct, usedBytes: 0, totalBytes: 0 });
    const triggers: Trigger[] = [];
    const s = new Scheduler({ clock, usage, run: async (_p, t) => void triggers.push(t) });
    s.update([{ policy: 'full', watermark: { high: 90, low: 70 }, checkIntervalMs: 10_000, roots: ['/data', '/data2'] }]);
    await clock.advance(30_000);
    assert.equal(probed.length, 6); // 3 polls x 2 roots
    assert.equal(triggers.length, 0);
    pct = 90; // equal to high is not above it
    await clock.advance(10_000);
    assert.equal(triggers.length, 0);
    pct = 91.5;
    await clock.advance(10_000);
    assert.deepEqual(triggers, [{ kind: 'watermark', root: '/data', percent: 91.5, high: 90, low: 70 }]);
    await s.stop();
  });

  test('a probe error is logged with the path and polling continues', async () => {
    const clock = new FakeClock(0);
    const { lines, logger } = collectingLogger();
    let calls = 0;
    const usage = async (): Promise<Usage> => {
      if (++calls === 1) throw new Error('statfs /gone: ENOENT');
      return { percent: 99, usedBytes: 0, totalBytes: 0 };
    };
    let runs = 0;
    const s = new Scheduler({ clock, usage, logger, run: async () => void runs++ });
    s.update([{ policy: 'w', watermark: { high: 80, low: 60 }, checkIntervalMs: 1000, roots: ['/gone'] }]);
    await clock.advance(2000);
    assert.ok(lines.some((l) => l.level === 'warn' && /watermark check failed/.test(l.msg)));
    assert.equal(runs, 1);
    await s.stop();
  });

  test('update() replaces the set (SIGHUP): a dropped policy stops, counters of kept ones survive', async () => {
    const clock = new FakeClock(T('2026-01-01T00:00:00Z'));
    const ran: string[] = [];
    const s = new Scheduler({ clock, run: async (p) => void ran.push(p) });
    s.update([cronEntry('a', '* * * * *'), cronEntry('b', '* * * * *')]);
    await clock.advance(MIN);
    s.update([cronEntry('a', '*/2 * * * *')]);
    await clock.advance(2 * MIN);
    assert.deepEqual(ran, ['a', 'b', 'a']);
    assert.equal(s.status().length, 1);
    assert.equal(s.status()[0]!.runs, 2);
    await s.stop();
  });

  test('a bad cron is logged, not thrown; other policies still run', async () => {
    const clock = new FakeClock(0);
    const { lines, logger } = collectingLogger();
    const ran: string[] = [];
    const s = new Scheduler({ clock, logger, run: async (p) => void ran.push(p) });
    s.update([cronEntry('bad', '* * *'), cronEntry('good', '* * * * *')]);
    await clock.advance(MIN);
    assert.deepEqual(ran, ['good']);
    assert.ok(lines.some((l) => l.level === 'error' && l.fields?.policy === 'bad'));
    await s.stop();
  });

  test('entriesFromPolicy resolves fileset roots and defaults', () => {
    const sp: Span = { file: 'p', line: 1, col: 1, length: 1 };
    const pf: PolicyFile = {
      file: 'p',
      tiers: [],
      filesets: [{ name: 'fs', span: sp, roots: ['/srv/a', '/srv/b'], include: ['**'], exclude: [] }],
      recall: { wholeFileFor: [] },
      policies: [
        { name: 'cron', span: sp, fileset: 'fs', filesetSpan: sp, schedule: { cron: '0 2 * * *', span: sp }, timezone: 'Europe/Paris', rules: [] },
        { name: 'wm', span: sp, fileset: 'fs', filesetSpan: sp, watermark: { high: 90, low: 80, span: sp }, rules: [] },
        { name: 'manual', span: sp, fileset: 'fs', filesetSpan: sp, rules: [] },
      ],
    };
    assert.deepEqual(entriesFromPolicy(pf), [
      { policy: 'cron', schedule: { cron: '0 2 * * *', tz: 'Europe/Paris' }, watermark: undefined, checkIntervalMs: 300_000, roots: ['/srv/a', '/srv/b'] },
      { policy: 'wm', schedule: undefined, watermark: { high: 90, low: 80 }, checkIntervalMs: 300_000, roots: ['/srv/a', '/srv/b'] },
    ]);
  });
});

describe('scheduler (real clock)', () => {
  test('a 6-field every-second cron fires on consecutive whole seconds', async () => {
    const dues: number[] = [];
    let resolve!: () => void;
    const twice = new Promise<void>((r) => (resolve = r));
    const s = new Scheduler({
      clock: systemClock,
      run: async (_p, t) => {
        if (t.kind === 'schedule') dues.push(t.due);
        if (dues.length === 2) resolve();
      },
    });
    s.update([{ policy: 'tick', schedule: { cron: '*/1 * * * * *' }, checkIntervalMs: MIN, roots: [] }]);
    // Not a speed assertion: the cap only keeps a broken scheduler from hanging the suite.
    const cap = setTimeout(resolve, 10_000);
    await twice;
    clearTimeout(cap);
    await s.stop();
    assert.ok(dues.length >= 2, `fired ${dues.length} times`);
    assert.equal(dues[0]! % 1000, 0);
    assert.equal(dues[1]! - dues[0]!, 1000);
  });
});
