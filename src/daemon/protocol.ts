// The control socket's wire format: HTTP/1.1 over a Unix socket (STATE_DIR/control.sock,
// mode 0600, litestream style). Requests are JSON bodies; long-running requests answer
// with NDJSON: zero or more `progress` lines, then exactly one `result` or `error` line.
// Short requests (GET /status, GET /health) answer with one JSON object.
//
// Invariants:
// - The last line of a streamed answer is always `result` or `error`; a stream that ends
//   without one means the daemon died mid-request (the client reports it as such).
// - Everything on the wire is plain JSON: no class instances, no bigints.
import { join } from 'node:path';

export const SOCKET_NAME = 'control.sock';
export const DEFAULT_STATE_DIR = '/var/lib/tier';

export function socketPath(stateDir: string): string {
  return join(stateDir, SOCKET_NAME);
}

export interface ApplyRequest {
  /** Absolute path of the policy file to run (the daemon parses it itself). */
  policyFile: string;
  policy?: string;
  dryRun: boolean;
  /** ms since epoch; the daemon's clock when absent. */
  now?: number;
}

/** `tier reconcile` (src/reconcile/reconcile.ts); no policyFiles: the daemon's own filesets. */
export interface ReconcileRequest {
  policyFiles?: string[];
  dryRun: boolean;
  hash: boolean;
}

/** `tier import` (src/import/run.ts). */
export interface ImportRequest {
  policyFile: string; // absolute
  tier: string;
  dir: string; // absolute
  prefix?: string;
  dryRun: boolean;
  delete: boolean;
  /** Owner and modes of created files and directories (src/import/ownership.ts); absent: defaults. */
  uid?: number;
  gid?: number;
  filePerms?: number;
  dirPerms?: number;
}

export type ManualOp = 'release' | 'archive' | 'recall';

export interface ManualRequest {
  paths: string[];
  tier?: string;
}

export type StreamLine =
  | { type: 'progress'; event: unknown }
  | { type: 'result'; result: unknown }
  | { type: 'error'; error: WireError };

export interface WireError {
  message: string;
  code?: string;
  /** HTTP-ish status: 400 bad request, 404 unknown endpoint, 409 busy, 500 internal. */
  status: number;
}

export interface DaemonStatus {
  pid: number; // the worker
  supervisorPid: number;
  mode: 'pre-content' | 'content';
  startedAt: number; // ms since epoch, this worker
  policyFiles: string[];
  stateDir: string;
  /** Files marked at start-up from the catalog, and the ones skipped (missing, changed). */
  startup: { marked: number; skipped: number; inherited: boolean; filesystems?: number };
  /** Whatever the recall service reports (marks, recalls served, in flight, bytes...). */
  recall: Record<string, unknown>;
  /** Requests being served on the control socket right now. */
  activeRequests: number;
}

export interface Health {
  ok: true;
  pid: number;
}

/** Splits a byte stream into complete lines; the remainder stays buffered. */
export class LineSplitter {
  private rest = '';
  push(chunk: string): string[] {
    this.rest += chunk;
    const parts = this.rest.split('\n');
    this.rest = parts.pop() ?? '';
    return parts.filter((l) => l.length > 0);
  }
  /** What is left once the stream ended (a last line without newline). */
  end(): string[] {
    const r = this.rest;
    this.rest = '';
    return r.length > 0 ? [r] : [];
  }
}
