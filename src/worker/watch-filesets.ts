// Start-up marking by scheme (recall/marks.ts): a filesystem mark on each managed
// filesystem where allowed, per-file inode marks for the released files of the rest.
//
// Rules:
// - A fresh group: filesystem marks first, then inode marks for the rows no filesystem
//   mark covers (nothing per file under a filesystem mark: that is the start-up win).
// - An inherited group (restarted worker, takeover) keeps its marks, except the ignore
//   marks: they are flushed (a worker killed between its punch and the removal of its
//   ignore mark must not leave one on a released file). Flushing takes the inode marks of
//   fallback filesets with them, so those rows are marked again, before `ready`.
import type { Logger } from '../log.js';
import type { Marks } from '../recall/marks.js';
import { markReleasedFiles, type MarkResult, type ReleasedRow } from './startup-marks.js';

export interface Fileset {
  root: string;
  /** Where the filesystem is reachable now (the backing before the root is bound). */
  openAt: string;
}

export function placeMarks(
  marks: Marks,
  filesets: readonly Fileset[],
  /** The catalog's released rows under none of the given roots (Catalog.releasedFilesOutside). */
  rows: (coveredRoots: readonly string[]) => Iterable<ReleasedRow>,
  markReleased: (fd: number) => void,
  freshGroup: boolean,
  log: Logger,
  /** Directories the daemon itself writes synchronously (the state directory): never under a filesystem mark. */
  ownDirs: readonly string[] = [],
): MarkResult & { filesystems: number } {
  const covered: string[] = [];
  for (const f of filesets) {
    let w: ReturnType<Marks['watch']>;
    try {
      w = marks.watch(f.openAt, ownDirs);
    } catch (e) {
      w = { scheme: 'inode', why: (e as Error).message };
    }
    if (w.scheme === 'filesystem') covered.push(f.root);
    else log.info('fileset marked per released file (inode marks)', { op: 'fanotify_mark', path: f.root, why: w.why });
  }
  if (!freshGroup && marks.filesystems === 0) return { marked: 0, skipped: 0, inherited: true, filesystems: 0 };
  if (!freshGroup) marks.flushIgnores();
  const under = (p: string): boolean => covered.some((r) => p === r || p.startsWith(r.endsWith('/') ? r : `${r}/`));
  // A row on a covered filesystem outside these roots (a fileset left the policy) needs no
  // mark either, and its synchronous open would raise an event only this thread answers.
  const fallback = (function* () {
    for (const r of rows(covered)) if (!under(r.path) && !marks.coversPath(r.openPath ?? r.path)) yield r;
  })();
  const res = markReleasedFiles(fallback, markReleased, log, filesets.map((f) => f.openAt));
  return { ...res, inherited: !freshGroup, filesystems: marks.filesystems };
}
