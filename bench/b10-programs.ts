// 10. Real programs on released files, S3 tier at its defaults (Ceph RGW, loopback).
// (a) SQLite's `PRAGMA integrity_check` of a released database (it reads every page, long
//     runs of them downward, 4 KiB a pread) vs the best a whole-file recall could do:
//     one SDK GetObject written to a file on the same filesystem, then the check of that
//     copy. Goal >= 0.8, the bar of cold reads (issue 11 goal 3). The note adds the check of
//     the never-released database with its page cache dropped.
// (b) `tail -n` of a released log (it reads 8 KiB blocks from the end down): fetched /
//     what tail printed, goal <= 2 as for bench 1's streams.
// Each round reads a freshly released file (after a read the files are whole again).
import { mkdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Ctx } from './lib/context.js';
import { downloadTo, recallCounters, release, s3KeyOf, settled, type World } from './lib/setup.js';
import { dropFileCache, fmtBytes, fmtMs, log, median, nowMs, sh, type Result } from './lib/util.js';

/** `cmd args` must print `want` (trimmed); returns its wall time. */
function timed(cmd: string, args: string[], want?: string): { ms: number; out: string } {
  const t0 = nowMs();
  const out = sh(cmd, args);
  const ms = nowMs() - t0;
  if (want !== undefined && out.trim() !== want) throw new Error(`${cmd} ${args.join(' ')}: printed ${JSON.stringify(out.slice(0, 200))}, expected ${want}`);
  return { ms, out };
}

/** `step`'s result, with the recall events it raised and the bytes it had fetched (one status request each side). */
async function counted<T>(w: World, step: () => T): Promise<{ value: T; events: number; fetched: number }> {
  const a = await recallCounters(w);
  const value = step();
  const b = await recallCounters(w);
  return { value, events: b.events - a.events, fetched: b.fetched - a.fetched };
}

export async function benchPrograms(w: World, ctx: Ctx): Promise<Result[]> {
  const dir = join(w.data, 'b10');
  const outside = join(w.mnt, 'b10-copies'); // beside the fileset: never released
  mkdirSync(dir);
  mkdirSync(outside, { recursive: true });
  const db = join(dir, 'app.db');
  const rows = Math.max(20_000, Math.round(400_000 * ctx.scale));
  log(`10: building a SQLite database of ${rows} rows`);
  sh('sqlite3', [
    db,
    'CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, b BLOB);' +
      `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<${rows}) INSERT INTO t SELECT x, hex(randomblob(8)), randomblob(300) FROM c;` +
      'CREATE INDEX t_k ON t(k);',
  ]);
  const logFile = join(dir, 'app.log');
  const logLines = Math.max(100_000, Math.round(4_000_000 * ctx.scale));
  sh('bash', ['-c', `seq 1 ${logLines} | awk '{print "2026-12-07T17:00:00Z host" ($1 % 7) " req=" $1 " " substr("abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz", 1, ($1 * 7) % 60)}' > '${logFile}'`]);
  const tailN = Math.round(logLines / 40);
  sh('sync', []);
  const dbSize = statSync(db).size;
  const logSize = statSync(logFile).size;
  log(`10: database ${fmtBytes(dbSize)}, log ${fmtBytes(logSize)}; releasing both to rgw`);

  const rounds = 3;
  const released: number[] = [];
  const baseline: number[] = [];
  const dl: number[] = [];
  const check: number[] = [];
  const cold: number[] = [];
  const dbEvents: number[] = [];
  const dbFetched: number[] = [];
  const tailFetched: number[] = [];
  const tailEvents: number[] = [];
  let tailRead = 0;
  const tailWant = sh('tail', ['-n', String(tailN), logFile]);
  for (let r = 0; r < rounds; r++) {
    if (r > 0) await settled([db]); // the log stays partial (tail read its end): released again as it is
    await release(w, [db, logFile], 'rgw');
    const key = s3KeyOf(w, db);
    sh('sync', []);

    const chk = await counted(w, () => timed('sqlite3', [db, 'PRAGMA integrity_check'], 'ok'));
    released.push(chk.value.ms);
    dbEvents.push(chk.events);
    dbFetched.push(chk.fetched);

    const copy = join(outside, 'app.db');
    const got = await downloadTo(w, key, copy);
    if (got.bytes !== dbSize) throw new Error(`GetObject of ${key}: ${got.bytes} bytes, expected ${dbSize}`);
    const d = got.ms;
    const c = timed('sqlite3', [copy, 'PRAGMA integrity_check'], 'ok').ms;
    dl.push(d);
    check.push(c);
    baseline.push(d + c);
    sh('sync', []);
    dropFileCache(copy);
    cold.push(timed('sqlite3', [copy, 'PRAGMA integrity_check'], 'ok').ms);
    unlinkSync(copy);

    const t = await counted(w, () => timed('tail', ['-n', String(tailN), logFile]));
    if (t.value.out !== tailWant) throw new Error('tail of the released log: wrong lines');
    tailRead = Buffer.byteLength(t.value.out);
    tailEvents.push(t.events);
    tailFetched.push(t.fetched);
  }
  const rel = median(released);
  const base = median(baseline);
  log(`10: integrity_check released ${released.map(fmtMs)}, download ${dl.map(fmtMs)} + check ${check.map(fmtMs)}, never released cold ${cold.map(fmtMs)}`);
  const fetchedTail = median(tailFetched);
  return [
    {
      id: '10a',
      name: `SQLite PRAGMA integrity_check of a released ${fmtBytes(dbSize)} database, S3 tier (Ceph RGW, loopback)`,
      figure: fmtMs(rel),
      baseline: `one SDK GetObject of the object written to a file on the same filesystem (${fmtMs(median(dl))}), then the check of that copy (${fmtMs(median(check))}): ${fmtMs(base)}`,
      ratio: base / rel,
      dir: '>=',
      limit: 0.8,
      ratioIs: 'download-then-check time / released check time',
      note: `medians of ${rounds} rounds (released afresh each round); the check of the never-released copy with its page cache dropped: ${fmtMs(median(cold))} (ratio ${(median(cold) / rel).toFixed(3)}); events ${median(dbEvents)}, fetched ${fmtBytes(median(dbFetched))} (sums included)`,
    },
    {
      id: '10b',
      name: `tail -n ${tailN} of a released ${fmtBytes(logSize)} log, S3 tier (Ceph RGW, loopback)`,
      figure: `fetched ${fmtBytes(fetchedTail)}`,
      baseline: `tail printed ${fmtBytes(tailRead)}`,
      ratio: fetchedTail / tailRead,
      dir: '<=',
      limit: 2,
      ratioIs: 'fetched / printed',
      note: `medians of ${rounds} rounds; events ${median(tailEvents)} (tail reads 8 KiB blocks from the end down: a window below it, read-ahead backward)`,
    },
  ];
}
