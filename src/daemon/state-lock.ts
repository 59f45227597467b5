// One daemon per state dir: the catalog, the in-flight record and the control socket are
// its alone (a second supervisor would drop the first one's in-flight record at start).
// A pid file created with O_EXCL; a file left by a dead daemon (no such process, or a
// process that is not a tier daemon) is taken over.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class StateDirBusy extends Error {}

/** force: a takeover (takeover.ts) replaces the running daemon, whose file this overwrites. */
export function lockStateDir(stateDir: string, force = false): () => void {
  const file = join(stateDir, 'daemon.pid');
  const mine = `${process.pid}\n`;
  try {
    writeFileSync(file, mine, { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    if (!force && isTierDaemon(pid))
      throw new StateDirBusy(`another tier daemon (pid ${pid}) uses ${stateDir}; stop it first or pick another --state-dir`);
    writeFileSync(file, mine, { mode: 0o600 }); // stale: its owner is gone
  }
  return () => {
    try {
      if (readFileSync(file, 'utf8') === mine) rmSync(file, { force: true });
    } catch {
      // already gone
    }
  };
}

function isTierDaemon(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('daemon');
  } catch {
    return false; // no such process
  }
}
