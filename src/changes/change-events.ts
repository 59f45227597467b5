// Routing decoded FID events (src/kernel/fanotify-fid.ts) to what they mean for the catalog:
// a file turned dirty, a file deleted, a file or directory renamed.
//
// Decisions are taken on the state of the filesystem when the event is handled, not on
// the event alone: the kernel merges queued events of one object (a MODIFY and a later
// DELETE of the same name can arrive as one event), and a directory may have moved since.
// - modify/attrib/close_write: coalesced per object for DEBOUNCE_MS after its first
//   event (not extended by later ones: a writer that never stops is still seen), then
//   compared with its record (deriveState), as the fd-based tracker did at close;
// - delete: a child that is gone (ESTALE) or has no name left (nlink 0) is a delete; one
//   that lives on (another hard link) is not;
// - rename: old and new dir+name in one FAN_RENAME event, the child's FID with it. A
//   managed file the rename replaced gets its own FAN_ATTRIB (link count): inspected like
//   any content event, it is gone (a delete) or alive under another name (onAlive: its
//   row moves there).
import type { DirEntry, FidEvent, FileId } from '../kernel/fanotify-fid.js';
import { fidKey, inoFromHandle } from '../kernel/fanotify-fid.js';
import { FAN_ATTRIB, FAN_CLOSE_WRITE, FAN_DELETE, FAN_MODIFY, FAN_ONDIR, FAN_RENAME } from '../kernel/fanotify.js';
import { deriveState } from '../engine/facts.js';
import type { StateRecord } from '../engine/state-record.js';
import type { Logger } from '../log.js';
import { entryPath, resolveHandle, type WatchedFs } from './change-fs.js';

export const DEBOUNCE_MS = 150;

export interface DirtyFile {
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  record: StateRecord;
}

/** A managed file's last name went away. `ino` null: the handle type is unknown, look up by path. */
export interface DeletedFile {
  dev: number;
  ino: number | null;
  path: string | null;
}

export interface RenamedEntry {
  dev: number;
  /** The renamed object's inode (null when the handle type is unknown: find the row by `from`). */
  ino: number | null;
  from: string | null;
  to: string;
  dir: boolean;
  /** Not a rename: the name `from` of a hard-linked file went, `to` is one it still has. */
  linkRemoved?: boolean;
}

/** A managed inode (it has a record) that is alive, at `path` (checked by the receiver). */
export interface LiveFile {
  dev: number;
  ino: number;
  path: string;
}

export interface ChangeSink {
  onDirty(f: DirtyFile): void;
  onDeleted(d: DeletedFile): void;
  onRenamed(r: RenamedEntry): void;
  /** Its row may name a path it no longer has (a rename replaced one name of a hard-linked file). */
  onAlive(f: LiveFile): void;
}

const CONTENT = FAN_MODIFY | FAN_ATTRIB | FAN_CLOSE_WRITE;

export class ChangeRouter {
  private pending = new Map<string, { w: WatchedFs; id: FileId; entry?: DirEntry }>();
  private timer: NodeJS.Timeout | null = null;
  /** Directory paths looked up in the current batch (cleared per batch and by directory renames). */
  private dirs = new Map<string, string | null>();

  constructor(
    private readonly fss: Map<string, WatchedFs>,
    private readonly roots: string[],
    private readonly sink: ChangeSink,
    private readonly log: Logger,
  ) {}

  /** Call before routing the events of one read. */
  beginBatch(): void {
    this.dirs.clear();
  }

  /** One event (never throws: a failure is logged and the next event goes on). */
  route(ev: FidEvent): void {
    const w = this.fss.get((ev.fid ?? ev.dir ?? ev.from)?.fsid ?? '');
    if (!w) return; // not a filesystem we marked
    try {
      if (ev.mask & FAN_RENAME) {
        this.renamed(w, ev);
        if (ev.mask & FAN_ONDIR) this.dirs.clear();
      }
      if (ev.mask & FAN_DELETE && !(ev.mask & FAN_ONDIR)) this.deleted(w, ev);
      if (ev.mask & CONTENT && !(ev.mask & FAN_ONDIR) && ev.fid) this.later(w, ev.fid, ev.dir && 'name' in ev.dir ? ev.dir : undefined);
    } catch (e) {
      this.log.warn('change tracking: event not handled', { op: opOf(ev.mask), err: e });
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }

  private later(w: WatchedFs, id: FileId, entry?: DirEntry): void {
    const key = fidKey(id);
    this.pending.set(key, { w, id, entry: entry ?? this.pending.get(key)?.entry });
    this.timer ??= setTimeout(() => this.flush(), DEBOUNCE_MS);
  }

  /** Inspects every object that had content events in the last window. */
  flush(): void {
    this.timer = null;
    this.dirs.clear();
    const batch = [...this.pending.values()];
    this.pending.clear();
    for (const { w, id, entry } of batch) {
      try {
        this.inspect(w, id, entry);
      } catch (e) {
        this.log.warn('change tracking: event not handled', { op: 'inspect', err: e });
      }
    }
  }

  private inspect(w: WatchedFs, id: FileId, entry?: DirEntry): void {
    const r = resolveHandle(w, id, true);
    if (r.gone) {
      // Its last name went away since (unlink, or a rename onto it): a delete.
      this.sink.onDeleted({ dev: w.dev, ino: inoFromHandle(id), path: null });
      return;
    }
    const rec = r.record;
    if (!r.isFile || !rec) return; // unmanaged
    // The fd's own path is the current one; a dentry the handle could not connect has none:
    // then the parent dir + name of the event.
    const path = r.path ?? (entry ? entryPath(w, entry, entry.name, this.dirs) : null);
    if (path === null) return;
    // Its row may name a link it lost (a rename onto it): moved first, dirty may follow.
    this.sink.onAlive({ dev: r.dev, ino: r.ino, path });
    // A record that says dirty already (the recall service finished a written released
    // file) is still reported: the catalog row may not know yet (trackDirty dedupes).
    if (!rec.copy || deriveState(rec, { size: r.size, mtimeNs: r.mtimeNs }) !== 'dirty') return;
    if (!this.roots.some((root) => path.startsWith(root))) return; // not managed here
    this.sink.onDirty({ path, dev: r.dev, ino: r.ino, size: r.size, mtimeNs: r.mtimeNs, record: rec });
  }

  private deleted(w: WatchedFs, ev: FidEvent): void {
    const path = ev.dir && 'name' in ev.dir ? entryPath(w, ev.dir, ev.dir.name, this.dirs) : null;
    if (ev.fid) {
      const r = resolveHandle(w, ev.fid, false);
      if (!r.gone) {
        // One hard link of an inode that lives on: no delete; a row at the removed name
        // moves to a name the file still has (start-up marking opens rows by path).
        if (path !== null && r.path !== null) this.sink.onRenamed({ dev: w.dev, ino: r.ino, from: path, to: r.path, dir: false, linkRemoved: true });
        return;
      }
      this.sink.onDeleted({ dev: w.dev, ino: inoFromHandle(ev.fid), path });
    } else this.sink.onDeleted({ dev: w.dev, ino: null, path });
  }

  private renamed(w: WatchedFs, ev: FidEvent): void {
    if (!ev.to) return;
    const to = entryPath(w, ev.to, ev.to.name, this.dirs);
    if (to === null) return; // its new directory is gone already: a later delete/scan settles it
    const from = ev.from ? entryPath(w, ev.from, ev.from.name, this.dirs) : null;
    let ino = ev.fid ? inoFromHandle(ev.fid) : null;
    if (ino === null && ev.fid) {
      const r = resolveHandle(w, ev.fid, false);
      if (!r.gone) ino = r.ino;
    }
    this.sink.onRenamed({ dev: w.dev, ino, from, to, dir: (ev.mask & FAN_ONDIR) !== 0 });
  }
}

function opOf(mask: number): string {
  if (mask & FAN_RENAME) return 'rename';
  if (mask & FAN_DELETE) return 'delete';
  return 'modify';
}
