// Walking a file's data map with lseek SEEK_DATA/SEEK_HOLE through the engine's own fd
// (raises no fanotify event; kernel-facts.md). Called under the lease, so nobody can
// change the layout while the copy is made; the caller's last look (size, mtime, inode)
// still guards the record.
//
// What the filesystem calls data is what the copy stores: ext4 and xfs report dirty page
// cache over an unwritten or delayed extent as data, and an unwritten (preallocated,
// never written) extent as a hole. Holes read as zeros either way, so the logical bytes
// are the same; only allocation differs.
import { seekDataHole, SEEK_DATA, SEEK_HOLE } from '../kernel/libc.js';
import { makeMap, MAX_EXTENTS, MapError, type Extent, type ExtentMap } from '../chunks/extent-map.js';

/** The data extents of the file behind `fd`, of logical size `size`. Throws MapError past MAX_EXTENTS. */
export function scanExtents(fd: number, size: number, path?: string, signal?: AbortSignal): ExtentMap {
  const list: Extent[] = [];
  let pos = 0;
  while (pos < size) {
    const data = seekDataHole(fd, pos, SEEK_DATA, path);
    if (data === null || data >= size) break;
    // Every file has an implicit hole at EOF, so SEEK_HOLE always answers.
    const hole = Math.min(seekDataHole(fd, data, SEEK_HOLE, path) ?? size, size);
    if (hole <= data) throw new Error(`lseek: hole at ${hole} before data at ${data}${path ? ` in ${path}` : ''}`);
    list.push({ off: data, len: hole - data });
    if (list.length > MAX_EXTENTS) throw new MapError(`more than ${MAX_EXTENTS} data extents: too fragmented to archive`);
    if ((list.length & 0xfff) === 0) signal?.throwIfAborted();
    pos = hole;
  }
  return makeMap(size, list);
}
