// Test harness for the recall service: a loop-mounted filesystem, a real group, a
// tier, and released files built by hand the way the engine's release protocol does
// (open -> mark -> punch through the pre-mark fd -> record -> restore times).
//
// The test process itself must never open a marked file synchronously: the handler
// runs on this same event loop. Readers are child processes (async spawn).
import { execFile } from 'node:child_process';
import { closeSync, fstatSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { DEFAULT_TUNING, DEFAULT_WHOLE_FILE_FOR, type TierTuning } from '../../src/dsl/ast.js';
import { SUMS_SUFFIX, XATTR_STATE, decodeRecord, encodeRecord, sumsInRecord, sumsKey, type StateRecord } from '../../src/record/state-record.js';
import { encodeTree } from '../../src/chunks/sums-tree.js';
import { ChunkSums } from '../../src/engine/upload.js';
import { createGroup, type GroupMode } from '../../src/kernel/fanotify.js';
import { fsetxattr, futimens, nsToTimespec } from '../../src/kernel/libc.js';
import { punchHole } from '../../src/kernel/punch.js';
import { jsonLogger, silentLogger } from '../../src/log.js';
import { RecallService, type RecallLogRecord } from '../../src/recall/service.js';
import { LocalTier } from '../../src/tiers/local.js';
import type { Tier } from '../../src/tiers/tier.js';
import { mountLoopFs, type FsType, type LoopFs } from '../helpers/loopfs.js';

export const MTIME_NS = 1_600_000_000_123_456_789n;

export interface Harness {
  fs: LoopFs;
  group: number;
  svc: RecallService;
  tier: Tier;
  records: RecallLogRecord[];
  tuning: TierTuning;
  inflightPath: string;
  /** Bytes GETs of `.sums` objects returned so far (part of bytesFetched). */
  sumsFetched(): number;
  /** Stops the service, closes the group, unmounts. */
  close(): Promise<void>;
}

export interface HarnessOpts {
  type?: FsType;
  sizeMiB?: number;
  mode?: GroupMode;
  tuning?: Partial<TierTuning>;
  /** Builds the tier (default: a LocalTier named 'slow' in the scratch dir). */
  makeTier?: (scratch: string, tuning: TierTuning) => Tier;
  /** Wraps the tier the service uses (fault injection). */
  wrapTier?: (t: Tier) => Tier;
  /** Called when the event thread dies while serving (default: the process exits). */
  onThreadDeath?: (err: Error) => void;
}

export async function startHarness(o: HarnessOpts = {}): Promise<Harness> {
  const fs = mountLoopFs(o.type ?? 'ext4', o.sizeMiB);
  const mode = o.mode ?? 'pre-content';
  const tuning: TierTuning = { ...DEFAULT_TUNING, chunk: 256 * 1024, readahead: 1024 * 1024, timeoutMs: 5000, ...o.tuning };
  const base = o.makeTier ? o.makeTier(fs.scratch, tuning) : new LocalTier('slow', join(fs.scratch, 'tier'), tuning);
  const wrapped = o.wrapTier ? o.wrapTier(base) : base;
  // Counts the bytes GETs of sums objects return: bytesFetched must include them.
  const sums = { bytes: 0 };
  const tier = new Proxy(wrapped, {
    get(t, prop) {
      const v = Reflect.get(t, prop, t) as unknown;
      if (prop !== 'get' || typeof v !== 'function') return typeof v === 'function' ? v.bind(t) : v;
      return async (...args: Parameters<Tier['get']>) => {
        const got = await (v as Tier['get']).apply(t, args);
        if (args[0].endsWith(SUMS_SUFFIX)) sums.bytes += got.length;
        return got;
      };
    },
  });
  const group = createGroup(mode);
  const records: RecallLogRecord[] = [];
  const inflightPath = join(fs.scratch, 'inflight');
  const svc = new RecallService({
    groupFd: group,
    mode,
    tiers: new Map([[tier.name, tier]]),
    settings: { wholeFileFor: DEFAULT_WHOLE_FILE_FOR },
    inflightPath,
    log: process.env.TIER_TEST_LOG ? jsonLogger((l) => process.stderr.write(l + '\n'), 'debug') : silentLogger,
    onRecall: (r) => records.push(r),
    tuning: new Map([[tier.name, tuning]]),
    onThreadDeath: o.onThreadDeath,
  });
  await svc.start();
  live.add(svc);
  return {
    fs,
    group,
    svc,
    tier,
    records,
    tuning,
    inflightPath,
    sumsFetched: () => sums.bytes,
    async close() {
      live.delete(svc);
      await svc.stop();
      closeSync(group);
      await tier.close();
      fs.unmount();
    },
  };
}

/** Deterministic bytes that differ at every offset of interest. */
export function pattern(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    if (i + 4 <= size) b.writeUInt32LE(x, i);
    else for (let j = i; j < size; j++) b[j] = (x >>> ((j - i) * 8)) & 0xff;
  }
  return b;
}

/**
 * Writes `data` at `name` (mode `fileMode`), uploads it with its chunk sums object (as the
 * engine does; `sums: false` makes a record of the older format without them, `flat: true`
 * one of the flat sums format of copies made before the two-level one), and
 * releases it: mark, punch, record, restore mtime. Returns the path.
 */
export async function makeReleased(
  h: Harness,
  name: string,
  data: Buffer,
  fileMode = 0o644,
  mark: (fd: number) => void = (fd) => h.svc.markReleased(fd),
  opts: { sums?: boolean; chunk?: number; flat?: boolean } = {},
): Promise<string> {
  const path = join(h.fs.dir, name);
  writeFileSync(path, data, { mode: fileMode });
  const key = `k/${name}`;
  const sha256 = createHash('sha256').update(data).digest('hex');
  const meta = { sha256, size: data.length, path, mode: fileMode, uid: 0, gid: 0, mtimeMs: Number(MTIME_NS / 1_000_000n) };
  await h.tier.put(key, Readable.from([data]), data.length, meta);
  let sumsSha: string | undefined;
  let tree = false;
  const chunk = opts.chunk ?? h.tuning.chunk;
  if (opts.sums !== false) {
    // As upload.ts writes them today: none for a small copy, else two levels; `flat`: the
    // format of copies made before (one object of 32 bytes per chunk, named by its SHA-256).
    const cs = new ChunkSums(chunk);
    cs.update(data);
    const flat = cs.digest();
    let obj: Buffer | null = flat;
    sumsSha = createHash('sha256').update(flat).digest('hex');
    if (!opts.flat && sumsInRecord({ size: data.length, chunk })) obj = null;
    else if (!opts.flat) {
      const t = encodeTree(flat);
      obj = t.obj;
      sumsSha = t.sumsSha;
      tree = true;
    }
    if (obj) await h.tier.put(sumsKey(key), Readable.from([obj]), obj.length, { ...meta, sha256: createHash('sha256').update(obj).digest('hex'), size: obj.length });
  }
  const fd = openSync(path, 'r+');
  try {
    mark(fd);
    // Whole blocks only are freed: punch up to the block past EOF (KEEP_SIZE keeps the size).
    punchHole(fd, 0, Math.ceil(data.length / 65536) * 65536, path);
    if (fstatSync(fd).blocks !== 0) throw new Error(`${path}: punch left blocks`);
    const rec: StateRecord = {
      v: 1,
      state: 'released',
      pinned: false,
      gen: 1,
      copy: { tier: h.tier.name, key, size: data.length, mtimeNs: MTIME_NS.toString(), sha256, archivedAt: Date.now(), chunk, ...(sumsSha ? { sumsSha } : {}), ...(tree ? { tree: true as const } : {}) },
    };
    fsetxattr(fd, XATTR_STATE, encodeRecord(rec), path);
    futimens(fd, nsToTimespec(MTIME_NS), nsToTimespec(MTIME_NS), path);
  } finally {
    closeSync(fd);
  }
  return path;
}

export interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs a command asynchronously (never blocks the handler's event loop). */
export function run(cmd: string, args: string[], opts: { input?: Buffer } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      const c = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof c === 'number' ? c : 1, stdout, stderr: stderr.toString() });
    });
    if (opts.input) child.stdin?.end(opts.input);
  });
}

/** Allocated bytes (st_blocks * 512); stat raises no event. */
export function allocated(path: string): number {
  return statSync(path).blocks * 512;
}

/** Services of the harnesses open now: stateOf and residentOf wait for their work after answers. */
const live = new Set<RecallService>();

/**
 * A file's completion (sync, record) runs after the answer to the read that completed it
 * (handler.ts): wait for the services' work after answers, at most 15 s, so a record read
 * right after a whole read is the final one (if it is still not, the caller's check fails).
 */
async function settle(): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((r) => (timer = setTimeout(r, 15_000)));
  await Promise.race([Promise.all([...live].map((s) => s.settled())), bound]);
  clearTimeout(timer);
}

/** The state record, read by path (getfattr: no open, so no event), once the services settled. */
export async function stateOf(path: string): Promise<StateRecord | null> {
  await settle();
  const r = await run('getfattr', ['--only-values', '-n', XATTR_STATE, path]);
  if (r.code !== 0) return null;
  return decodeRecord(r.stdout);
}

export async function residentOf(path: string): Promise<Buffer | null> {
  await settle();
  const r = await run('getfattr', ['--only-values', '-e', 'hex', '-n', 'trusted.tier.resident', path]);
  return r.code === 0 ? r.stdout : null;
}
