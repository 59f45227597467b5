// Punching holes: frees the blocks of a byte range and keeps the file size.
// Whole blocks are freed; unaligned edges are zeroed (kernel-facts.md).
import { fallocate } from './libc.js';

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;

export function punchHole(fd: number, offset: number, len: number, path?: string): void {
  if (len <= 0) return;
  fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len, path);
}
