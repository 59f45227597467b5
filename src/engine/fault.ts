// FAULT INJECTION for the reliability suite (test/reliability): kill -9 at a named point of
// the migration protocol. Inert unless TIER_FAULT_FILE is set in the environment (read once
// at load: otherwise faultPoint is an empty call).
//
// The file holds `POINT COUNT [daemon]`: the COUNT-th time this or any later process passes
// POINT, the file is removed and the process dies by SIGKILL (with `daemon`, its parent, the
// supervisor, first: the whole daemon dies and the fanotify group with it). Removing the file
// first means a restarted process runs clean.
//
// `POINT COUNT throw [CODE]` injects an error instead: from the COUNT-th pass on, every pass
// throws an Error with code CODE (default EIO; message `fault injected at POINT`) until the
// test removes the file (e.g. a bitmap xattr that cannot be written: recall/inode.ts).
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';

const FILE = process.env.TIER_FAULT_FILE;

export function faultPoint(name: string): void {
  if (FILE) hit(FILE, name);
}

function hit(file: string, name: string): void {
  let words: string[];
  try {
    words = readFileSync(file, 'utf8').trim().split(/\s+/);
  } catch {
    return; // not armed
  }
  if (words[0] !== name) return;
  const left = Number(words[1] ?? 1) - 1;
  if (left > 0) return writeFileSync(file, `${name} ${left} ${words.slice(2).join(' ')}`);
  if (words[2] === 'throw') throw Object.assign(new Error(`fault injected at ${name}`), { code: words[3] ?? 'EIO' });
  unlinkSync(file);
  if (words[2] === 'daemon') process.kill(process.ppid, 'SIGKILL');
  process.kill(process.pid, 'SIGKILL');
}
