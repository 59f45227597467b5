// The optional metrics listener: GET /metrics in Prometheus text format on a loopback
// address only (the data is not secret, but nothing here authenticates, so it is not
// offered to the network; put a reverse proxy in front if a remote Prometheus needs it).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { CONTENT_TYPE } from './metrics.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** "9464", "127.0.0.1:9464", "[::1]:9464", "localhost:9464" -> a loopback address; else an error message. */
export function parseListen(text: string): ListenAddress | string {
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d{1,5})$/.exec(text.trim());
  if (!m) return `metrics address "${text}": expected PORT or HOST:PORT`;
  const port = Number(m[2]);
  if (port > 65535) return `metrics address "${text}": port ${port} out of range 0-65535 (0: any free port)`;
  let host = m[1] ?? '127.0.0.1';
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (host === 'localhost') host = '127.0.0.1';
  const loopback = (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
  if (!loopback) return `metrics address "${text}": only loopback addresses (127.x.x.x, ::1) are served`;
  return { host, port };
}

/** Answers one request for the metrics text; shared by the loopback listener and the control socket. */
export function serveMetrics(req: IncomingMessage, res: ServerResponse, render: () => string): void {
  const url = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' || url !== '/metrics') {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: GET /metrics\n');
    return;
  }
  let body: string;
  try {
    body = render();
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(`metrics: ${(e as Error).message}\n`);
    return;
  }
  res.writeHead(200, { 'content-type': CONTENT_TYPE });
  res.end(body);
}

export async function listenMetrics(addr: ListenAddress, render: () => string): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => serveMetrics(req, res, render));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`metrics listener ${addr.host}:${addr.port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    server.listen(addr.port, addr.host, () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : addr.port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
