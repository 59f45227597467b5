// HTTP over a Unix socket for `tier apply`, `tier status` and the manual actions.
// Who may talk to it: whoever can connect to STATE_DIR/control.sock. The socket is
// created mode 0600 (umask during bind, then chmod) inside a 0700 state dir, so only
// root reaches it; the daemon does not check peer credentials itself.
//
// Invariants:
// - The socket file is replaced unconditionally: one daemon per state dir is guaranteed by
//   the supervisor's lock (state-lock.ts), and a worker being replaced may still hold the
//   old listening socket while it dies (the path is what clients use).
// - Every streamed answer ends with exactly one `result` or `error` line, whatever throws.
// - A client that hangs up aborts its request's AbortSignal.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, unlinkSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { ApplyRequest, DaemonStatus, ImportRequest, ManualOp, ManualRequest, ReconcileRequest, StreamLine, WireError } from '../daemon/protocol.js';
import { validId, validPerms } from '../import/ownership.js';

export interface ControlHandlers {
  status(): DaemonStatus;
  /** Prometheus text exposition (the same as the optional loopback listener). */
  metrics(): string;
  apply(req: ApplyRequest, progress: (event: unknown) => void, signal: AbortSignal): Promise<unknown>;
  manual(op: ManualOp, req: ManualRequest, progress: (event: unknown) => void, signal: AbortSignal): Promise<unknown>;
  /** `tier reconcile` (absent: 404). */
  reconcile?(req: ReconcileRequest, progress: (event: unknown) => void, signal: AbortSignal): Promise<unknown>;
  /** `tier import` (absent: 404). */
  import?(req: ImportRequest, progress: (event: unknown) => void, signal: AbortSignal): Promise<unknown>;
}

/** A request the daemon refuses with a message for the user (bad body, unknown tier...). */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const MAX_BODY = 16 * 1024 * 1024; // a path list for a large manual release

/** POST /handover (takeover.ts): prepare() stops reading the group; done() once answered. */
export interface Handover {
  prepare(): Promise<void>;
  done(): void;
}

export class ControlServer {
  private server: Server | null = null;
  private active = 0;
  handover: Handover | null = null;

  constructor(
    private readonly path: string,
    private readonly handlers: ControlHandlers,
    private readonly log: Logger,
  ) {}

  get activeRequests(): number {
    return this.active;
  }

  async listen(): Promise<void> {
    removeStaleSocket(this.path);
    const server = createServer((req, res) => void this.route(req, res));
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    const key = `${req.method} ${url}`;
    try {
      if (key === 'GET /health') return json(res, 200, { ok: true, pid: process.pid });
      if (key === 'GET /status') return json(res, 200, this.handlers.status());
      if (key === 'GET /metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        return void res.end(this.handlers.metrics());
      }
      if (key === 'POST /handover' && this.handover) {
        const h = this.handover;
        this.handover = null; // once
        await h.prepare();
        res.on('finish', () => h.done());
        return json(res, 200, { ok: true, pid: process.pid });
      }
      if (key === 'POST /apply') {
        const body = await readJson(req);
        const ar = parseApply(body);
        return await this.stream(req, res, (p, s) => this.handlers.apply(ar, p, s));
      }
      const reconcile = this.handlers.reconcile?.bind(this.handlers);
      if (key === 'POST /reconcile' && reconcile) {
        const rr = parseReconcile(await readJson(req));
        return await this.stream(req, res, (p, s) => reconcile(rr, p, s));
      }
      const imp = this.handlers.import?.bind(this.handlers);
      if (key === 'POST /import' && imp) {
        const ir = parseImport(await readJson(req));
        return await this.stream(req, res, (p, s) => imp(ir, p, s));
      }
      const m = /^POST \/(release|archive|recall)$/.exec(key);
      if (m) {
        const op = m[1] as ManualOp;
        const mr = parseManual(await readJson(req));
        return await this.stream(req, res, (p, s) => this.handlers.manual(op, mr, p, s));
      }
      return json(res, 404, { message: `unknown endpoint ${key}`, status: 404 });
    } catch (e) {
      const err = toWire(e);
      if (err.status >= 500) this.log.error('control request failed', { op: key, err: e });
      if (!res.headersSent) return json(res, err.status, err);
      res.end();
    }
  }

  private async stream(
    req: IncomingMessage,
    res: ServerResponse,
    run: (progress: (e: unknown) => void, signal: AbortSignal) => Promise<unknown>,
  ): Promise<void> {
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort(new Error('client hung up'));
    });
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const send = (line: StreamLine) => {
      if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify(line) + '\n');
    };
    this.active++;
    this.log.info('control request', { op: `${req.method} ${req.url}` });
    try {
      const result = await run((event) => send({ type: 'progress', event }), ac.signal);
      send({ type: 'result', result });
    } catch (e) {
      const err = toWire(e);
      if (err.status >= 500) this.log.error('control request failed', { op: req.url, err: e });
      send({ type: 'error', error: err });
    } finally {
      this.active--;
      res.end();
    }
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of req) {
    n += (chunk as Buffer).length;
    if (n > MAX_BODY) throw new RequestError(`request body over ${MAX_BODY} bytes`, 413);
    parts.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8') || '{}');
  } catch {
    throw new RequestError('request body is not JSON');
  }
}

function parseApply(b: unknown): ApplyRequest {
  const o = b as Partial<ApplyRequest> | null;
  if (!o || typeof o.policyFile !== 'string' || !o.policyFile.startsWith('/'))
    throw new RequestError('apply: policyFile must be an absolute path');
  if (o.policy !== undefined && typeof o.policy !== 'string') throw new RequestError('apply: policy must be a string');
  if (o.now !== undefined && typeof o.now !== 'number') throw new RequestError('apply: now must be a number');
  return { policyFile: o.policyFile, policy: o.policy, dryRun: o.dryRun === true, now: o.now };
}

function parseManual(b: unknown): ManualRequest {
  const o = b as Partial<ManualRequest> | null;
  if (!o || !Array.isArray(o.paths) || !o.paths.every((p) => typeof p === 'string' && p.startsWith('/')))
    throw new RequestError('paths must be a list of absolute paths');
  if (o.tier !== undefined && typeof o.tier !== 'string') throw new RequestError('tier must be a string');
  return { paths: o.paths, tier: o.tier };
}

function parseReconcile(b: unknown): ReconcileRequest {
  const o = b as Partial<ReconcileRequest> | null;
  if (o?.policyFiles !== undefined && (!Array.isArray(o.policyFiles) || !o.policyFiles.every((p) => typeof p === 'string' && p.startsWith('/'))))
    throw new RequestError('reconcile: policyFiles must be a list of absolute paths');
  return { ...(o?.policyFiles ? { policyFiles: o.policyFiles } : {}), dryRun: o?.dryRun === true, hash: o?.hash === true };
}

function parseImport(b: unknown): ImportRequest {
  const o = b as Partial<ImportRequest> | null;
  const abs = (x: unknown) => typeof x === 'string' && x.startsWith('/');
  if (!o || !abs(o.policyFile) || !abs(o.dir)) throw new RequestError('import: policyFile and dir must be absolute paths');
  if (typeof o.tier !== 'string' || o.tier === '') throw new RequestError('import: tier must be a name');
  if (o.prefix !== undefined && typeof o.prefix !== 'string') throw new RequestError('import: prefix must be a string');
  for (const k of ['uid', 'gid'] as const) if (o[k] !== undefined && !validId(o[k])) throw new RequestError(`import: ${k} must be a whole number from 0 to 4294967294`);
  for (const k of ['filePerms', 'dirPerms'] as const) if (o[k] !== undefined && !validPerms(o[k])) throw new RequestError(`import: ${k} must be permission bits (0 to 0777)`);
  const own = Object.fromEntries((['uid', 'gid', 'filePerms', 'dirPerms'] as const).filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
  return { policyFile: o.policyFile!, tier: o.tier, dir: o.dir!, ...(o.prefix ? { prefix: o.prefix } : {}), dryRun: o.dryRun === true, delete: o.delete === true, ...own };
}

function toWire(e: unknown): WireError {
  if (e instanceof RequestError) return { message: e.message, status: e.status };
  const err = e as { message?: string; code?: string; name?: string };
  // UserError (bad policy file...) is the user's problem, not the daemon's.
  const status = err?.name === 'UserError' ? 400 : 500;
  return { message: err?.message ?? String(e), code: typeof err?.code === 'string' ? err.code : undefined, status };
}

/** Removes the previous worker's socket file (see the invariant above). */
function removeStaleSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
