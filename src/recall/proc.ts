// What /proc says about a reader and an fd: for logs and the whole-file-at-open rule.
import { readFileSync, readlinkSync } from 'node:fs';

/** The reader's command name (/proc/PID/comm), '' when it is gone. */
export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Whether `comm` is one of `names`; the kernel cuts comm to 15 bytes, so longer names match their first 15. */
export function namedIn(names: readonly string[], comm: string): boolean {
  return comm !== '' && names.some((n) => n === comm || (n.length > 15 && n.slice(0, 15) === comm));
}

/** The path an fd of this process refers to, for messages ('' when unknown). */
export function pathOfFd(fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return '';
  }
}
