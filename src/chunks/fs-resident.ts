// The filesystem as the witness of what a partial file holds (issue 11): lseek
// SEEK_DATA/SEEK_HOLE through an event fd or the engine's own fd (no fanotify event).
// Used by the recall service (recall/fill.ts, recall/inode.ts) and partial re-release.
//
// Why it is enough (measured with power cuts: test/recall/powercut.test.ts): on ext4
// (data=ordered) and xfs a block written but not yet on disk is, after a crash, a hole
// (never allocated, or an unwritten extent, which SEEK_DATA calls a hole once no page
// cache covers it). So recalled bytes need no fdatasync before the reader's ALLOW:
// - a resident bit is believed only where the file has data under every piece of the
//   copy's data in that chunk (lostChunks); a bit whose bytes a crash took is dropped and
//   the chunk fetched again;
// - the re-fetch of such a chunk writes only into the file's holes (holesIn): a block
//   that is data there is the copy's bytes from before the crash or a user's write, so a
//   re-fetch never overwrites what a user made durable (an fsync writes back every dirty
//   page of the file, so a user's durable write carries every earlier fill with it).
import { seekDataHole, SEEK_DATA, SEEK_HOLE } from '../kernel/libc.js';
import { piecesOf, type ExtentMap } from './extent-map.js';
import type { ResidentMap } from './resident.js';

export interface Span {
  start: number;
  end: number;
}

/** The holes of the file behind `fd` inside [start, end) (end clamped to `size`), ascending. */
export function holesIn(fd: number, start: number, end: number): Span[] {
  const out: Span[] = [];
  let pos = start;
  while (pos < end) {
    const hole = seekDataHole(fd, pos, SEEK_HOLE);
    if (hole === null || hole >= end) break;
    const data = seekDataHole(fd, hole, SEEK_DATA);
    const stop = data === null ? end : Math.min(end, data);
    out.push({ start: hole, end: stop });
    pos = stop;
  }
  return out;
}

/** Where the copy has data in chunk i ([start, end) of the file), clamped below `size`. */
function dataOf(map: ExtentMap | null, chunk: number, copySize: number, i: number, size: number): Span[] {
  const start = i * chunk;
  const end = Math.min(copySize, (i + 1) * chunk, size);
  if (end <= start) return [];
  if (!map) return [{ start, end }];
  return piecesOf(map, start, end)
    .filter((p) => p.kind === 'data')
    .map((p) => ({ start: p.at, end: p.at + p.len }));
}

/**
 * The chunks `bits` calls resident whose copy data is not all data in the file (a crash
 * took their bytes); `map` null: the copy is dense. `size`: the file's current size.
 */
export function lostChunks(fd: number, copy: { chunk: number; size: number }, map: ExtentMap | null, bits: ResidentMap, size: number): number[] {
  const lost: number[] = [];
  for (let i = 0; i < bits.chunks; i++) {
    if (!bits.has(i)) continue;
    if (dataOf(map, copy.chunk, copy.size, i, size).some((s) => holesIn(fd, s.start, s.end).length > 0)) lost.push(i);
  }
  return lost;
}
