// The CLI side of the control socket. `connectDaemon` answers null when no daemon runs
// (no socket file, or a stale one left by a crash: connection refused), so callers can
// choose between "send it to the daemon" and "refuse / run locally".
// One connection per request (agent: false): a kept-alive socket reused just as the server's
// keep-alive timer closes it fails the next request with EPIPE or ECONNRESET, and the
// control socket is local, so a connect costs next to nothing.
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import {
  LineSplitter,
  socketPath,
  type ApplyRequest,
  type DaemonStatus,
  type Health,
  type ImportRequest,
  type ManualOp,
  type ManualRequest,
  type ReconcileRequest,
  type StreamLine,
  type WireError,
} from './protocol.js';

/** The daemon refused or failed a request; `message` is meant for the user. */
export class DaemonError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'DaemonError';
  }
}

export type OnProgress = (event: unknown) => void;

export interface DaemonClient {
  readonly socket: string;
  health(): Promise<Health>;
  status(): Promise<DaemonStatus>;
  apply(req: ApplyRequest, onProgress?: OnProgress, signal?: AbortSignal): Promise<unknown>;
  manual(op: ManualOp, req: ManualRequest, onProgress?: OnProgress, signal?: AbortSignal): Promise<unknown>;
  reconcile(req: ReconcileRequest, onProgress?: OnProgress, signal?: AbortSignal): Promise<unknown>;
  import(req: ImportRequest, onProgress?: OnProgress, signal?: AbortSignal): Promise<unknown>;
}

export async function connectDaemon(stateDir: string): Promise<DaemonClient | null> {
  const sock = socketPath(stateDir);
  if (!existsSync(sock)) return null;
  const client = makeClient(sock);
  try {
    await client.health();
    return client;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ENOENT') return null;
    throw new DaemonError(`cannot reach the daemon at ${sock}: ${(e as Error).message}`, 503, code);
  }
}

function makeClient(sock: string): DaemonClient {
  return {
    socket: sock,
    health: () => getJson<Health>(sock, '/health', HEALTH_TIMEOUT_MS),
    status: () => getJson<DaemonStatus>(sock, '/status'),
    apply: (req, onProgress, signal) => postStream(sock, '/apply', req, onProgress, signal),
    manual: (op, req, onProgress, signal) => postStream(sock, `/${op}`, req, onProgress, signal),
    reconcile: (req, onProgress, signal) => postStream(sock, '/reconcile', req, onProgress, signal),
    import: (req, onProgress, signal) => postStream(sock, '/import', req, onProgress, signal),
  };
}

/** A daemon that accepts but does not answer (wedged worker) is not "running". */
const HEALTH_TIMEOUT_MS = 10_000;

function getJson<T>(sock: string, path: string, timeoutMs?: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, path, method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(body) as unknown;
          if (res.statusCode !== 200) return reject(wireToError(parsed as WireError, res.statusCode ?? 500));
          resolve(parsed as T);
        } catch {
          reject(new DaemonError(`daemon sent a malformed answer to ${path}`, 502));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new DaemonError(`no answer to ${path} within ${timeoutMs} ms`, 504)));
    req.on('error', reject);
    req.end();
  });
}

function postStream(
  sock: string,
  path: string,
  body: unknown,
  onProgress: OnProgress = () => {},
  signal?: AbortSignal,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath: sock,
        path,
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        signal,
      },
      (res) => {
        if (res.statusCode !== 200) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            try {
              reject(wireToError(JSON.parse(text) as WireError, res.statusCode ?? 500));
            } catch {
              reject(new DaemonError(`daemon answered ${res.statusCode} to ${path}`, res.statusCode ?? 500));
            }
          });
          return;
        }
        const lines = new LineSplitter();
        let done = false;
        const handle = (raw: string) => {
          if (done) return;
          let line: StreamLine;
          try {
            line = JSON.parse(raw) as StreamLine;
          } catch {
            return; // a torn line can only be the last one; the end handler reports it
          }
          if (line.type === 'progress') onProgress(line.event);
          else if (line.type === 'result') {
            done = true;
            resolve(line.result);
          } else if (line.type === 'error') {
            done = true;
            reject(wireToError(line.error, line.error.status));
          }
        };
        res.setEncoding('utf8');
        res.on('data', (c: string) => lines.push(c).forEach(handle));
        res.on('end', () => {
          lines.end().forEach(handle);
          if (!done) reject(new DaemonError(`the daemon stopped while answering ${path} (see its log)`, 502));
        });
        res.on('error', (e) => {
          if (!done) reject(new DaemonError(`connection to the daemon lost during ${path}: ${e.message}`, 502));
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function wireToError(w: WireError, status: number): DaemonError {
  return new DaemonError(w?.message ?? `daemon error ${status}`, w?.status ?? status, w?.code);
}
