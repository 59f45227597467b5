// Whether an opener gets the whole file recalled at open (`whole_file_for`), from what
// /proc says about it and which file it opens.
//
// Rules (why: docs/recall.md "mmap, exec, copiers"):
// - A name in the list (its comm; names past 15 bytes match on their first 15) gets the
//   whole file, except tar and bsdtar opening their own archive (-f/--file): tar *reading*
//   an archive (tvf, xf) reads and seeks through it like any reader, so it gets ranges.
//   tar *creating* opens the members by name: those it must get whole (it checks ctime
//   after reading, and --sparse uses SEEK_DATA).
// - "Its own archive" is a string match of the opened fd's path against the -f operand
//   resolved against the opener's cwd, both from /proc: nothing the opener names is ever
//   opened or stat'ed by the daemon. Anything unclear (no -f, symlinks in the operand,
//   another mount namespace, a process gone) fails toward the whole file.
// - `tar -cf X X` (the archive as a member) is refused by tar itself ("file is the archive").
import { readFileSync, readlinkSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { namedIn } from './proc.js';

const ARCHIVERS = new Set(['tar', 'bsdtar']);
/** Short options of GNU tar and bsdtar that take an argument (an old-style cluster consumes argv in order). */
const TAKES_ARG = new Set(['b', 'C', 'f', 'F', 'g', 'H', 'I', 'K', 'L', 'N', 'T', 'V', 'X']);

/** The archive operands (-f, --file) on a tar or bsdtar command line; pure. */
export function tarArchives(argv: readonly string[]): string[] {
  const out: string[] = [];
  let i = 1;
  // Old style: the first argument without a dash is a cluster of letters ("tvf", "czf").
  const first = argv[1];
  if (first !== undefined && first !== '' && !first.startsWith('-')) {
    i = 2;
    for (const c of first) {
      if (!TAKES_ARG.has(c)) continue;
      const v = argv[i++];
      if (c === 'f' && v !== undefined) out.push(v);
    }
  }
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a.startsWith('--')) {
      if (a.startsWith('--file=')) out.push(a.slice('--file='.length));
      else if (a === '--file' && argv[i + 1] !== undefined) out.push(argv[++i]!);
      continue;
    }
    if (!a.startsWith('-') || a === '-') continue;
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      if (!TAKES_ARG.has(c)) continue;
      const v = j + 1 < a.length ? a.slice(j + 1) : argv[++i];
      if (c === 'f' && v !== undefined) out.push(v);
      break;
    }
  }
  return out;
}

/** The opener's argv, or null when it is gone or unreadable. */
function argvOf(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    const argv = raw.split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    return argv.map((s) => Buffer.from(s, 'latin1').toString('utf8'));
  } catch {
    return null;
  }
}

/** True when the opener of `filePath` (the event fd's path) is tar/bsdtar opening one of its archives. */
export function isOwnArchive(pid: number, filePath: string): boolean {
  if (filePath === '') return false;
  const argv = argvOf(pid);
  if (!argv) return false;
  const archives = tarArchives(argv).filter((a) => a !== '-' && a !== '');
  if (archives.length === 0) return false;
  let cwd: string;
  try {
    cwd = readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return false;
  }
  return archives.some((a) => (isAbsolute(a) ? resolve(a) : resolve(cwd, a)) === filePath);
}

/**
 * Whether this open by `comm` (pid) of the file at `filePath` gets the whole file:
 * named in `names`, and not an archiver opening its own archive.
 */
export function wholeFileForOpener(names: readonly string[], comm: string, pid: number, filePath: () => string): boolean {
  if (!namedIn(names, comm)) return false;
  if (ARCHIVERS.has(comm) && isOwnArchive(pid, filePath())) return false;
  return true;
}
