import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { cronError, nextRun, nextRuns } from '../../src/schedule/cron.js';

const T = (iso: string) => Date.parse(iso);

describe('cron next-run', () => {
  test('5 fields: minute first, seconds zero', () => {
    assert.equal(nextRun({ cron: '*/15 * * * *', tz: 'UTC' }, T('2026-01-01T10:07:30Z')), T('2026-01-01T10:15:00Z'));
    assert.equal(nextRun({ cron: '0 3 * * *', tz: 'UTC' }, T('2026-01-01T10:00:00Z')), T('2026-01-02T03:00:00Z'));
  });

  test('6 fields: seconds first', () => {
    assert.deepEqual(nextRuns({ cron: '*/20 * * * * *', tz: 'UTC' }, T('2026-01-01T00:00:05Z'), 3), [
      T('2026-01-01T00:00:20Z'),
      T('2026-01-01T00:00:40Z'),
      T('2026-01-01T00:01:00Z'),
    ]);
  });

  test('strictly after: a time exactly on a slot gives the following slot', () => {
    assert.equal(nextRun({ cron: '* * * * *', tz: 'UTC' }, T('2026-01-01T00:05:00Z')), T('2026-01-01T00:06:00Z'));
  });

  test('time zone: 03:00 Berlin is 02:00 UTC in winter and 01:00 UTC in summer', () => {
    const spec = { cron: '0 3 * * *', tz: 'Europe/Berlin' };
    assert.equal(nextRun(spec, T('2026-01-10T12:00:00Z')), T('2026-01-11T02:00:00Z'));
    assert.equal(nextRun(spec, T('2026-07-10T12:00:00Z')), T('2026-07-11T01:00:00Z'));
  });

  test('aliases are accepted', () => {
    assert.equal(cronError({ cron: '@hourly' }), null);
    assert.equal(nextRun({ cron: '@hourly', tz: 'UTC' }, T('2026-01-01T10:07:00Z')), T('2026-01-01T11:00:00Z'));
  });

  test('bad expressions are named with the reason', () => {
    assert.match(cronError({ cron: '* * *' }) ?? '', /has 3 fields; expected 5/);
    assert.match(cronError({ cron: '* * * * * * *' }) ?? '', /has 7 fields/);
    assert.match(cronError({ cron: '61 * * * *' }) ?? '', /"61 \* \* \* \*".*59/);
    assert.match(cronError({ cron: '   ' }) ?? '', /empty/);
    assert.match(cronError({ cron: '* * * * *', tz: 'Mars/Olympus' }) ?? '', /unknown time zone "Mars\/Olympus"/);
    assert.throws(() => nextRun({ cron: 'x y' }, 0), /has 2 fields/);
  });
});
