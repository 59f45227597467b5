// Stop, step 1 (issue 12, item 4): released files that other processes hold open when the
// daemon stops are recalled whole while the group still serves. Once the group closes,
// a read through such an fd is no longer intercepted and would return the zeros of the
// hole; a whole file reads right with or without us.
//
// Invariants:
// - Holders are found by inode, never by path: every fd and every file mapping of every
//   process (/proc/PID/fd, /proc/PID/map_files) is stat'ed (stat raises no event) and
//   matched against the catalog's released/partial/dirty rows by (dev, ino).
// - The file is read through the holder's own open file (/proc/PID/fd/N reopened), so a
//   rename or a new file at the old path cannot redirect us; the reopened fd's inode is
//   checked again before reading.
// - Reads go through withMarkedIo (they wait on our own recall service) and stop at the
//   budget: the budget and every file left are logged.
import { readdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { constants } from 'node:fs';
import type { CatalogRow } from '../engine/catalog.js';
import { withMarkedIo } from '../engine/marked-io.js';
import type { Logger } from '../log.js';

export interface HeldFile {
  dev: number;
  ino: number;
  path: string; // the catalog's, for logs
  /** A /proc link to the holder's open file, e.g. /proc/123/fd/4. */
  links: string[];
  pids: number[];
}

/** Every file in `rows` some process other than `exclude` holds open or mapped. */
export function findHeldOpen(rows: Iterable<CatalogRow>, exclude: ReadonlySet<number>): HeldFile[] {
  const want = new Map<string, CatalogRow>();
  for (const r of rows) want.set(`${r.dev}:${r.ino}`, r);
  const held = new Map<string, HeldFile>();
  if (want.size === 0) return [];
  for (const name of safeList('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || exclude.has(pid)) continue;
    for (const dir of [`/proc/${pid}/fd`, `/proc/${pid}/map_files`]) {
      for (const n of safeList(dir)) {
        const link = `${dir}/${n}`;
        let st;
        try {
          st = statSync(link);
        } catch {
          continue; // closed meanwhile, or not a file
        }
        const key = `${st.dev}:${st.ino}`;
        const row = want.get(key);
        if (!row) continue;
        let h = held.get(key);
        if (!h) held.set(key, (h = { dev: row.dev, ino: row.ino, path: row.path, links: [], pids: [] }));
        h.links.push(link);
        if (!h.pids.includes(pid)) h.pids.push(pid);
      }
    }
  }
  return [...held.values()];
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface HeldOpenResult {
  found: number;
  recalled: number;
  failed: { path: string; pids: number[]; message: string }[];
  ms: number;
}

/** Recalls each held-open file whole (one at a time) within budgetMs; logs what it did. */
export async function serveHeldOpen(files: HeldFile[], budgetMs: number, log: Logger): Promise<HeldOpenResult> {
  const t0 = Date.now();
  const out: HeldOpenResult = { found: files.length, recalled: 0, failed: [], ms: 0 };
  if (files.length === 0) return out;
  log.info('stop: recalling released files held open by readers', { count: files.length, budgetMs });
  const signal = AbortSignal.timeout(budgetMs);
  for (const f of files) {
    let message: string | null = null;
    if (signal.aborted) message = `not recalled within the stop budget (${budgetMs} ms)`;
    else {
      try {
        const n = await withMarkedIo(() => readWholeVia(f, signal));
        if (n === null) log.info('stop: held-open file closed meanwhile', { path: f.path, pids: f.pids });
        else {
          out.recalled++;
          log.info('stop: held-open file recalled whole', { op: 'recall', path: f.path, pids: f.pids, bytes: n });
        }
      } catch (e) {
        message = signal.aborted ? `not recalled within the stop budget (${budgetMs} ms)` : (e as Error).message;
      }
    }
    if (message !== null) {
      out.failed.push({ path: f.path, pids: f.pids, message });
      log.error('stop: held-open released file not recalled: its readers may read zeros after the stop', {
        op: 'recall',
        path: f.path,
        pids: f.pids,
        err: message,
      });
    }
  }
  out.ms = Date.now() - t0;
  log.info('stop: held-open files done', { found: out.found, recalled: out.recalled, failed: out.failed.length, ms: out.ms, budgetMs });
  return out;
}

/** Reads the whole file through the first link that still names the same inode; null: no holder left. */
async function readWholeVia(f: HeldFile, signal: AbortSignal): Promise<number | null> {
  for (const link of f.links) {
    let fh;
    try {
      fh = await open(link, constants.O_RDONLY | constants.O_NOATIME);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // that holder closed it: try the next
      throw e;
    }
    try {
      const st = await fh.stat();
      if (st.dev !== f.dev || st.ino !== f.ino) continue;
      const buf = Buffer.allocUnsafe(4 << 20);
      let pos = 0;
      for (;;) {
        signal.throwIfAborted();
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) return pos;
        pos += bytesRead;
      }
    } finally {
      await fh.close();
    }
  }
  return null;
}
