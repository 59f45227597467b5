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

/** The path an fd of this process refers to, for messages ('' when unknown). */
export function pathOfFd(fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return '';
  }
}
