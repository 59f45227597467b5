// Decoding events of a FID-reporting fanotify group (FAN_REPORT_FID / DFID_NAME / TARGET_FID).
// Such groups get no event fd (fd is FAN_NOFD): each event names its objects by file
// handle instead, in info records after the metadata (values from include/uapi/linux/
// fanotify.h, checked on 6.18: docs/operations.md "Change tracking"):
//
//   struct fanotify_event_info_fid {  hdr { u8 type; u8 pad; u16 len };  i32 fsid[2];
//                                     struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[] };
//                                     char name[] (DFID_NAME, OLD_/NEW_DFID_NAME: NUL-terminated, padded) }
//
// Pure: no I/O. Never throws on a short or odd buffer: it stops at the first incomplete
// event, and skips an info record it cannot read.

export const FAN_EVENT_INFO_TYPE_FID = 1;
export const FAN_EVENT_INFO_TYPE_DFID_NAME = 2;
export const FAN_EVENT_INFO_TYPE_DFID = 3;
export const FAN_EVENT_INFO_TYPE_OLD_DFID_NAME = 10;
export const FAN_EVENT_INFO_TYPE_NEW_DFID_NAME = 12;

const META_LEN = 24;
const FID_HEAD = 20; // hdr 4 + fsid 8 + handle_bytes 4 + handle_type 4

export interface FileId {
  /** statfs f_fsid of the object's filesystem, as fsidKey() spells it. */
  fsid: string;
  /** struct file_handle (8-byte header + f_handle), a copy: open_by_handle_at takes it as is. */
  handle: Buffer;
  /** handle_type (1: ext4 ino32+gen; 0x81: xfs ino64+gen). */
  type: number;
}

export interface DirEntry extends FileId {
  /** The entry's name in that directory. */
  name: string;
}

export interface FidEvent {
  mask: number;
  pid: number;
  /** The object itself (FAN_REPORT_FID; on DELETE/RENAME the child, with TARGET_FID). */
  fid?: FileId;
  /** Parent directory and name (DFID_NAME), or the directory alone (DFID). */
  dir?: DirEntry | FileId;
  /** FAN_RENAME: where it was and where it is. */
  from?: DirEntry;
  to?: DirEntry;
}

/** fsid words as one key: "%08x:%08x" of the two i32 (unsigned). */
export function fsidAt(buf: Buffer, off: number): string {
  const h = (n: number) => n.toString(16).padStart(8, '0');
  return `${h(buf.readUInt32LE(off))}:${h(buf.readUInt32LE(off + 4))}`;
}

function readFid(buf: Buffer, at: number, end: number): { id: FileId; after: number } | null {
  if (at + FID_HEAD > end) return null;
  const bytes = buf.readUInt32LE(at + 12);
  const after = at + FID_HEAD + bytes;
  if (after > end) return null;
  return { id: { fsid: fsidAt(buf, at + 4), handle: Buffer.from(buf.subarray(at + 12, after)), type: buf.readInt32LE(at + 16) }, after };
}

function readName(buf: Buffer, from: number, end: number): string {
  const nul = buf.indexOf(0, from);
  return buf.toString('utf8', from, nul < 0 || nul > end ? end : nul);
}

/** Decodes every complete event in buf[0..len). */
export function decodeFidEvents(buf: Buffer, len: number): FidEvent[] {
  const out: FidEvent[] = [];
  let off = 0;
  while (off + META_LEN <= len) {
    const eventLen = buf.readUInt32LE(off);
    const metaLen = buf.readUInt16LE(off + 6);
    if (eventLen < META_LEN || off + eventLen > len) break;
    const ev: FidEvent = { mask: Number(buf.readBigUInt64LE(off + 8)), pid: buf.readInt32LE(off + 20) };
    const end = off + eventLen;
    let info = off + metaLen;
    while (info + 4 <= end) {
      const type = buf.readUInt8(info);
      const ilen = buf.readUInt16LE(info + 2);
      if (ilen < 4 || info + ilen > end) break;
      const r = readFid(buf, info, info + ilen);
      if (r) {
        const named = (): DirEntry => ({ ...r.id, name: readName(buf, r.after, info + ilen) });
        if (type === FAN_EVENT_INFO_TYPE_FID) ev.fid = r.id;
        else if (type === FAN_EVENT_INFO_TYPE_DFID) ev.dir = r.id;
        else if (type === FAN_EVENT_INFO_TYPE_DFID_NAME) ev.dir = named();
        else if (type === FAN_EVENT_INFO_TYPE_OLD_DFID_NAME) ev.from = named();
        else if (type === FAN_EVENT_INFO_TYPE_NEW_DFID_NAME) ev.to = named();
      }
      info += ilen;
    }
    out.push(ev);
    off += eventLen;
  }
  return out;
}

/**
 * The inode number inside a handle of the types ext4 and xfs make (FILEID_INO32_GEN[_PARENT]
 * 1/2: u32 ino first; xfs 64-bit 0x81/0x82: u64 ino first), or null for any other type.
 * Lets a delete find its catalog row after the inode is gone (open_by_handle_at: ESTALE).
 */
export function inoFromHandle(id: FileId): number | null {
  const bytes = id.handle.readUInt32LE(0);
  if ((id.type === 1 || id.type === 2) && bytes >= 8) return id.handle.readUInt32LE(8);
  if ((id.type === 0x81 || id.type === 0x82) && bytes >= 12) return Number(id.handle.readBigUInt64LE(8));
  return null;
}

export function fidKey(id: FileId): string {
  return `${id.fsid}/${id.handle.toString('hex')}`;
}
