// The walk's look at one file before anything is built for it: what evaluate() reads of a
// FileFacts (size, times, names, ids, state, pinned), as getters over the statx words of
// the current entry, the record read only when a condition asks for state or pinned. The
// walk threads evaluate a policy with it (walk.ts, `select`), so a file no rule acts on
// costs a statx and no record read, no object and no message.
//
// Rules:
// - The same values FileFacts carries (scan.ts builds those with the same msAt/nsAt), so
//   evaluate() decides a file the same way on either.
// - One view per walk, moved from file to file (`at`): nothing is allocated per file
//   unless a condition reads a string.
import type { FileState } from '../dsl/ast.js';
import { groupName, userName } from './users.js';
import { decodeRecord, deriveState, type StateRecord } from '../record/state-record.js';

const TWO32 = 4294967296;

/** struct statx as 32-bit words: where each field the view reads sits. */
export const SX = { uid: 5, gid: 6, mode: 7, ino: 8, size: 10, blocks: 12, atime: 16, ctime: 24, mtime: 28, devMajor: 34, devMinor: 35 } as const;

/** A timestamp [sec lo, sec hi (signed), nsec] at w[i] in ms, as `ns / 1e6n` + remainder. */
export function msAt(w: Uint32Array, i: number): number {
  const sec = (w[i + 1]! | 0) * TWO32 + w[i]!;
  const nsec = w[i + 2]!;
  if (sec >= 0) return sec * 1000 + Math.floor(nsec / 1e6) + (nsec % 1e6) / 1e6;
  const ns = BigInt(sec) * 1_000_000_000n + BigInt(nsec);
  return Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6;
}

/** The same timestamp in ns as a decimal string. */
export function nsAt(w: Uint32Array, i: number): string {
  const sec = (w[i + 1]! | 0) * TWO32 + w[i]!;
  const nsec = w[i + 2]!;
  if (sec >= 0) return sec === 0 ? String(nsec) : `${sec}${String(nsec).padStart(9, '0')}`;
  return (BigInt(sec) * 1_000_000_000n + BigInt(nsec)).toString();
}

export const u64At = (w: Uint32Array, i: number): number => w[i]! + w[i + 1]! * TWO32;

export class FileView {
  path = '';
  name = '';
  /** The record's raw bytes once read (null: none); undefined: not read yet. */
  raw: Buffer | null | undefined = undefined;
  private rec: StateRecord | null = null;

  /** `w`: the statx buffer of the walk (its words change with each entry). */
  constructor(
    private readonly w: Uint32Array,
    private readonly readRecord: () => Buffer | null,
  ) {}

  /** Moves the view to the next entry (its statx is in `w`). */
  at(path: string, name: string): void {
    this.path = path;
    this.name = name;
    this.raw = undefined;
    this.rec = null;
  }

  /** The record, read on first use (a read error is thrown to the walk, which reports it). */
  get record(): StateRecord | null {
    if (this.raw === undefined) {
      this.raw = this.readRecord();
      this.rec = decodeRecord(this.raw);
    }
    return this.rec;
  }

  get size(): number {
    return u64At(this.w, SX.size);
  }
  get atimeMs(): number {
    return msAt(this.w, SX.atime);
  }
  get mtimeMs(): number {
    return msAt(this.w, SX.mtime);
  }
  get ctimeMs(): number {
    return msAt(this.w, SX.ctime);
  }
  get uid(): number {
    return this.w[SX.uid]!;
  }
  get gid(): number {
    return this.w[SX.gid]!;
  }
  get owner(): string {
    return userName(this.uid);
  }
  get group(): string {
    return groupName(this.gid);
  }
  get state(): FileState {
    return deriveState(this.record, { size: this.size, mtimeNs: nsAt(this.w, SX.mtime) });
  }
  get pinned(): boolean {
    return this.record?.pinned ?? false;
  }
}
