// Durable-write and directory-walk helpers for the local tier (restic local.Save style):
// temp file in the same directory, fsync, rename, fsync the directory.
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TEMP_PREFIX } from './keys.js';

export function tempNameBeside(path: string): string {
  return join(dirname(path), `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `path` atomically; the caller fsyncs the directory (once, for several renames). */
export async function writeFileAtomicNoDirSync(path: string, data: string | Buffer): Promise<void> {
  const tmp = tempNameBeside(path);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** Reads up to `length` bytes at `offset`; stops early only at end of file. */
export async function preadFull(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const got = await preadInto(fh, buf, offset, length);
  return got === length ? buf : buf.subarray(0, got);
}

/** Up to `length` bytes at `offset` into `dst` from its start (fewer at EOF): the count. */
export async function preadInto(fh: FileHandle, dst: Buffer, offset: number, length: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(dst, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

export interface WalkEntry {
  rel: string; // '/'-separated path relative to the walk root
  abs: string;
  isTemp: boolean;
}

/** Depth-first, names sorted so listings are stable; yields files only. */
export async function* walkFiles(root: string, startRel = ''): AsyncGenerator<WalkEntry> {
  const abs = startRel ? join(root, startRel) : root;
  let ents;
  try {
    ents = await readdir(abs, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return; // vanished or never existed
    throw e;
  }
  ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const ent of ents) {
    const rel = startRel ? `${startRel}/${ent.name}` : ent.name;
    if (ent.isDirectory()) yield* walkFiles(root, rel);
    else if (ent.isFile()) yield { rel, abs: join(root, rel), isTemp: ent.name.startsWith(TEMP_PREFIX) };
  }
}
