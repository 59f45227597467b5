// Punching holes: frees the blocks of a byte range and keeps the file size.
// Whole blocks are freed; unaligned edges are zeroed (kernel-facts.md).
import { fallocate } from './libc.js';

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;

export function punchHole(fd: number, offset: number, len: number, path?: string): void {
  if (len <= 0) return;
  fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len, path);
}

/**
 * Punches [0, size) rounded up to `align` past EOF (an unaligned tail block is only zeroed,
 * not freed). A file at the filesystem's largest size cannot take the rounding (EFBIG,
 * measured on ext4 at s_maxbytes): then exactly [0, size).
 */
export function punchWhole(fd: number, size: number, align: number, path?: string): void {
  try {
    punchHole(fd, 0, Math.ceil(size / align) * align, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EFBIG') throw e;
    punchHole(fd, 0, size, path);
  }
}
