// Which recall mode this machine gets on a given filesystem, for `tier doctor` and
// the daemon's start-up: try what the daemon would do and report why not.
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { FAN_OPEN_PERM, FAN_PRE_ACCESS, addInodeMark, createGroup, type GroupMode } from './fanotify.js';

export interface ModeReport {
  kernel: string;
  mode: GroupMode | 'none';
  /** One line per attempt, e.g. "pre-content: mark on /mnt: EOPNOTSUPP". */
  reasons: string[];
}

function attempt(mode: GroupMode, file: string): string | null {
  let group = -1;
  let fd = -1;
  try {
    group = createGroup(mode);
  } catch (e) {
    return `${mode}: fanotify_init: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  }
  try {
    fd = openSync(file, 'r');
    addInodeMark(group, fd, mode === 'pre-content' ? FAN_PRE_ACCESS | FAN_OPEN_PERM : FAN_OPEN_PERM);
    return null;
  } catch (e) {
    return `${mode}: mark on ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  } finally {
    if (fd >= 0) closeSync(fd);
    closeSync(group);
  }
}

/** Tries a pre-content group and mark on a scratch file in `dir`, then the content fallback. */
export function detectMode(dir: string): ModeReport {
  const reasons: string[] = [];
  const tmp = mkdtempSync(join(dir, '.tier-probe-'));
  try {
    const file = join(tmp, 'probe');
    writeFileSync(file, 'x');
    for (const mode of ['pre-content', 'content'] as const) {
      const why = attempt(mode, file);
      if (why === null) return { kernel: release(), mode, reasons };
      reasons.push(why);
    }
    return { kernel: release(), mode: 'none', reasons };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
