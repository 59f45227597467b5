// Pure next-run computation for `schedule "CRON"`: 5 fields (minute first) or 6 (seconds
// first), or an @alias; in the machine's time zone unless `timezone` names one. cron-parser
// would silently pad a 3-field typo with `*`, so the field count is checked here first.
import { CronExpressionParser } from 'cron-parser';

export interface CronSpec {
  cron: string;
  tz?: string;
}

/** Why `spec` is not a usable schedule, or null when it is. */
export function cronError(spec: CronSpec): string | null {
  const text = spec.cron.trim();
  if (text === '') return 'empty cron expression';
  if (!text.startsWith('@')) {
    const n = text.split(/\s+/).length;
    if (n !== 5 && n !== 6) return `cron expression "${text}" has ${n} fields; expected 5 (minute hour day month weekday) or 6 (second first)`;
  }
  if (spec.tz !== undefined && !isTimeZone(spec.tz)) return `unknown time zone "${spec.tz}"`;
  try {
    CronExpressionParser.parse(text, { currentDate: new Date(0), tz: spec.tz }).next();
  } catch (e) {
    return `cron expression "${text}": ${(e as Error).message}`;
  }
  return null;
}

/** The first time strictly after `afterMs` (ms since epoch) at which `spec` fires. Throws on a bad spec. */
export function nextRun(spec: CronSpec, afterMs: number): number {
  const err = cronError(spec);
  if (err) throw new Error(err);
  const it = CronExpressionParser.parse(spec.cron.trim(), { currentDate: new Date(afterMs), tz: spec.tz });
  return it.next().getTime();
}

/** The next `count` run times after `afterMs` (for `tier explain` and reports). */
export function nextRuns(spec: CronSpec, afterMs: number, count: number): number[] {
  const out: number[] = [];
  let t = afterMs;
  for (let i = 0; i < count; i++) {
    t = nextRun(spec, t);
    out.push(t);
  }
  return out;
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
