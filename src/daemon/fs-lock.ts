// One daemon per managed filesystem (issue 12, item 7): two daemons on the same files
// would fill and punch them from two groups. The lock is an abstract unix socket named
// by the filesystem's device number, bound by the supervisor and inherited by its worker:
// it lives exactly as long as some process of the daemon does (a killed supervisor's
// worker still holds it; nothing is left behind on disk by a crash). Whoever holds it
// answers a connection with one JSON line saying who it is (LockOwner), so a refused
// daemon can name the running one, and a new daemon can find an orphaned worker.
import { statSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import type { PolicyFile } from '../dsl/ast.js';
import type { GroupMode } from '../kernel/fanotify.js';
import { statfsFsid } from '../kernel/libc.js';

export interface LockOwner {
  supervisorPid: number | null; // null: the supervisor is gone (an orphaned worker answers)
  workerPid: number | null;
  stateDir: string;
  /** The fd numbers in the worker: the group, and each lock by device (for a takeover). */
  groupFd?: number;
  mode?: GroupMode;
  lockFds?: Record<string, number>;
}

export class FilesystemBusy extends Error {
  constructor(
    readonly owner: LockOwner,
    readonly dir: string,
    readonly dev: number,
  ) {
    const pid = owner.supervisorPid ?? owner.workerPid;
    if (pid === null) {
      super(`the tier daemon lock of the filesystem of ${dir} (dev ${devName(dev)}) is held by a process that does not answer (a daemon exiting?): try again`);
      return;
    }
    const what = owner.supervisorPid === null ? `the worker of a tier daemon whose supervisor died (pid ${owner.workerPid})` : `another tier daemon (pid ${pid})`;
    super(
      `${what}, state dir ${owner.stateDir}, already serves the filesystem of ${dir} (dev ${devName(dev)}); ` +
        `one daemon per filesystem: stop it first, or start with --takeover to replace it`,
    );
  }
}

export function devName(dev: number): string {
  const major = Number((BigInt(dev) >> 8n) & 0xfffn) | Number((BigInt(dev) >> 32n) & ~0xfffn);
  const minor = Number(BigInt(dev) & 0xffn) | Number((BigInt(dev) >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** The lock's name: device and fsid of the filesystem `dir` is on (null fsid: statfs failed). */
function lockName(dev: number, dir: string): string {
  let fsid = 'unknown';
  try {
    fsid = statfsFsid(dir);
  } catch {
    // the dir vanished between stat and statfs: the device alone still locks
  }
  return `\0tier-daemon/fs/${dev}/${fsid}`;
}
/** The name daemons before the fsid key bound (asked too, so a reload can take one over). */
const legacyLockName = (dev: number): string => `\0tier-daemon/dev/${dev}`;

/**
 * The filesystems the policies manage: device -> a directory on it (for messages). A
 * fileset with `backing` is keyed by its backing directory (its root is a bind mount of
 * it, or an empty directory while the daemon is down). Roots that do not exist are left
 * to the worker to report.
 */
export function managedFilesystems(policies: PolicyFile[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const pf of policies)
    for (const fs of pf.filesets) {
      for (const dir of fs.backing ? [fs.backing.path] : fs.roots) {
        try {
          const dev = statSync(dir).dev;
          if (!out.has(dev)) out.set(dev, dir);
        } catch {
          // missing root: the worker says so
        }
      }
    }
  return out;
}

/** Asks the holder of the lock of dir's filesystem (device dev) who it is; null when nobody holds it (or it does not answer). */
export async function queryOwner(dev: number, dir: string, timeoutMs = 2000): Promise<LockOwner | null> {
  return (await ask(lockName(dev, dir), timeoutMs)) ?? (await ask(legacyLockName(dev), timeoutMs));
}

function ask(path: string, timeoutMs: number): Promise<LockOwner | null> {
  return new Promise((resolve) => {
    const s = connect({ path });
    let buf = '';
    const done = (v: LockOwner | null) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(timeoutMs, () => done(null));
    s.on('error', () => done(null));
    s.on('data', (c) => (buf += c));
    s.on('end', () => {
      try {
        done(JSON.parse(buf) as LockOwner);
      } catch {
        done(null);
      }
    });
  });
}

/** The locks a daemon holds: dev -> its listening socket. A reload adds and drops some. */
export class FsLocks {
  constructor(private readonly servers = new Map<number, Server>()) {}
  /** dev -> the listening socket's fd (inherit it to the worker). */
  get fds(): Map<number, number> {
    return new Map([...this.servers].map(([dev, s]) => [dev, (s as unknown as { _handle: { fd: number } })._handle.fd]));
  }
  server(dev: number): Server | undefined {
    return this.servers.get(dev);
  }
  has(dev: number): boolean {
    return this.servers.has(dev);
  }
  /** Takes in locks bound later (a reload added a filesystem). */
  merge(other: FsLocks): this {
    for (const [dev, s] of other.servers) this.servers.set(dev, s);
    return this;
  }
  /** Stops holding dev's lock (a reload dropped its last fileset). */
  release(dev: number): void {
    this.servers.get(dev)?.close();
    this.servers.delete(dev);
  }
  close(): void {
    for (const dev of [...this.servers.keys()]) this.release(dev);
  }
}

/** Serves `owner()` on a listening socket (a new bind, or an inherited fd). */
function serve(owner: () => LockOwner): Server {
  const server = createServer((c) => {
    c.on('error', () => {});
    c.end(JSON.stringify(owner()) + '\n');
  });
  server.on('error', () => {});
  return server;
}

/** Binds the lock of every dev; throws FilesystemBusy naming the holder of the first taken one. */
export async function lockFilesystems(devs: Map<number, string>, owner: () => LockOwner): Promise<FsLocks> {
  const locks = new FsLocks();
  for (const [dev, dir] of devs) {
    const server = serve(owner);
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      server.once('error', resolve);
      server.listen({ path: lockName(dev, dir) }, () => resolve(null));
    });
    if (err) {
      locks.close();
      if (err.code !== 'EADDRINUSE') throw err;
      const holder = await queryOwner(dev, dir);
      throw new FilesystemBusy(holder ?? { supervisorPid: null, workerPid: null, stateDir: '' }, dir, dev);
    }
    // Node keeps the fd of a listening pipe on its handle; it is ours to pass at spawn.
    locks.merge(new FsLocks(new Map([[dev, server]])));
    const legacy = await ask(legacyLockName(dev), 2000); // a daemon of an earlier version
    if (legacy) {
      locks.close();
      throw new FilesystemBusy(legacy, dir, dev);
    }
  }
  return locks;
}

/** Serves the lock on fds taken over from another daemon (takeover.ts). */
export function adoptLocks(fds: Map<number, number>, owner: () => LockOwner): FsLocks {
  return new FsLocks(new Map([...fds].map(([dev, fd]) => [dev, serve(owner).listen({ fd })])));
}

/** In the worker: answers on inherited lock fds too (dev -> fd), so an orphaned worker can be found. */
export function serveInheritedLocks(fds: Record<string, number>, owner: () => LockOwner): FsLocks {
  return adoptLocks(new Map(Object.entries(fds).map(([dev, fd]) => [Number(dev), fd])), owner);
}

/** In the worker: answers on a lock the supervisor bound after a reload (sent over IPC). */
export function serveSentLock(locks: FsLocks, dev: number, server: Server, owner: () => LockOwner): number {
  server.on('connection', (c) => {
    c.on('error', () => {});
    c.end(JSON.stringify(owner()) + '\n');
  });
  server.on('error', () => {});
  locks.merge(new FsLocks(new Map([[dev, server]])));
  return locks.fds.get(dev)!;
}
