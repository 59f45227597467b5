// A small loop-mounted filesystem under a temp dir, for tests that need real
// fanotify marks, leases, punch hole, watermarks or a full disk. Never on `/`.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type FsType = 'ext4' | 'xfs';

export interface LoopFs {
  /** The mount point. */
  dir: string;
  /** A scratch directory beside the mount (on the root filesystem), e.g. for a local tier. */
  scratch: string;
  type: FsType;
  unmount(): void;
}

export function mountLoopFs(type: FsType = 'ext4', sizeMiB = type === 'xfs' ? 320 : 128): LoopFs {
  const base = mkdtempSync(join(tmpdir(), `tier-${type}-`));
  const img = join(base, 'fs.img');
  const dir = join(base, 'mnt');
  const scratch = join(base, 'scratch');
  mkdirSync(dir);
  mkdirSync(scratch);
  execFileSync('truncate', ['-s', `${sizeMiB}M`, img]);
  // 512-byte inodes keep tier's xattr record inside the inode: a released file frees every block.
  if (type === 'ext4') execFileSync('mkfs.ext4', ['-q', '-F', '-I', '512', img]);
  else execFileSync('mkfs.xfs', ['-q', '-f', img]);
  execFileSync('mount', ['-o', 'loop', img, dir]);
  let mounted = true;
  return {
    dir,
    scratch,
    type,
    unmount() {
      if (mounted) {
        // Lazy unmount so a stray open fd in a failed test cannot wedge the suite.
        try {
          execFileSync('umount', [dir]);
        } catch {
          execFileSync('umount', ['-l', dir]);
        }
        mounted = false;
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/**
 * Takes every free block of the filesystem at `dir` (root may use the reserved ones too):
 * fallocate, then write until ENOSPC. Returns the filler files; unlink them to free the space.
 */
export function fillFilesystem(dir: string): string[] {
  const MiB = 1024 * 1024;
  const files = [join(dir, 'filler'), join(dir, 'filler2')];
  const s = statfsSync(dir);
  execFileSync('fallocate', ['-l', String(Math.max(MiB, s.bavail * s.bsize - 4 * MiB)), files[0]!]);
  const fd = openSync(files[1]!, 'w');
  try {
    for (const size of [64 * 1024, 4096, 512]) {
      const block = Buffer.alloc(size, 1);
      try {
        for (;;) writeSync(fd, block);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
  return files;
}
