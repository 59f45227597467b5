// Object keys -> paths under the import directory (pure). A key maps byte for byte: its
// '/'-separated segments become directories and the file name. Keys no file name can
// represent are skipped with a reason, never "fixed" into another name.
export type Mapped = { dirs: string[]; name: string } | { dir: string[] } | { skip: string };

/** The listing prefix: the --prefix with a '/' appended unless empty or already there. */
export function normalPrefix(p: string | undefined): string {
  if (!p) return '';
  const t = p.replace(/^\/+/, '');
  return t === '' || t.endsWith('/') ? t : t + '/';
}

const NAME_MAX = 255; // bytes, ext4 and xfs

export function mapKey(key: string, prefix: string): Mapped {
  if (!key.startsWith(prefix)) return { skip: 'outside the prefix' };
  const rel = key.slice(prefix.length);
  if (rel === '') return { skip: 'the prefix itself' };
  const marker = rel.endsWith('/'); // a "directory marker" object (console-made folders)
  const segs = (marker ? rel.slice(0, -1) : rel).split('/');
  for (const s of segs) {
    if (s === '' || s === '.' || s === '..') return { skip: `path segment ${JSON.stringify(s)} cannot be a file name` };
    if (s.includes('\0')) return { skip: 'NUL in key' };
    if (Buffer.byteLength(s) > NAME_MAX) return { skip: `segment longer than ${NAME_MAX} bytes` };
    if (s.startsWith('.tier-import.')) return { skip: 'name reserved for import temporaries' };
  }
  if (marker) return { dir: segs };
  return { dirs: segs.slice(0, -1), name: segs[segs.length - 1]! };
}
