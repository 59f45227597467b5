// `tier metrics [--state-dir DIR]`: prints the daemon's Prometheus text from GET /metrics on
// the control socket (no curl needed; the same text a scraper gets).
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { socketPath } from '../../daemon/protocol.js';
import { UserError, EXIT, type Printer } from '../io.js';

export function fetchMetrics(stateDir: string): Promise<string> {
  const sock = socketPath(stateDir);
  if (!existsSync(sock)) return Promise.reject(new UserError(`no daemon: ${sock} does not exist (start \`tier daemon\`)`));
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, path: '/metrics', method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new UserError(`daemon at ${sock}: GET /metrics: ${res.statusCode}: ${body.trim()}`))));
      res.on('error', reject);
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(new UserError(`cannot reach the daemon at ${sock}: ${e.code ?? e.message}`)));
    req.end();
  });
}

export async function runMetrics(opts: { stateDir: string }, printer: Printer): Promise<number> {
  const text = await fetchMetrics(opts.stateDir);
  printer.out(text.replace(/\n$/, ''));
  return EXIT.ok;
}
