// nginx (Debian nginx-light) serving a directory tree with autoindex on a loopback port,
// started by a test and stopped by pid. The access log counts what the server sent.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Nginx {
  url: string; // http://127.0.0.1:PORT/
  accessLog: string;
  /** Body bytes the server sent for GETs whose path starts with `pathPrefix`, from the access log. */
  bytesSent(pathPrefix?: string): number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Serves `www` (made world-readable up to it); `/norange/` answers without byte ranges. */
export async function startNginx(www: string): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'tier-nginx-'));
  for (let p = www; p !== '/' && p !== tmpdir(); p = join(p, '..')) chmodSync(p, 0o755);
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  const accessLog = join(dir, 'access.log');
  writeFileSync(
    conf,
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;\n` +
      `events { worker_connections 64; }\n` +
      `http { access_log ${accessLog}; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;\n` +
      `  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;\n` +
      `  server { listen 127.0.0.1:${port}; root ${www};\n` +
      `    location / { autoindex on; }\n    location /norange/ { autoindex on; max_ranges 0; } } }\n`,
  );
  const proc: ChildProcess = spawn('nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (c) => (err += c));
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${err}`);
    try {
      await fetch(url);
      break;
    } catch {
      if (i > 100) throw new Error(`nginx did not answer on ${url}: ${err}`);
      await sleep(50);
    }
  }
  return {
    url,
    accessLog,
    bytesSent(pathPrefix = '/') {
      if (!existsSync(accessLog)) return 0;
      let n = 0;
      for (const l of readFileSync(accessLog, 'utf8').split('\n')) {
        const m = /"GET (\S+) HTTP\/[\d.]+" (\d{3}) (\d+)/.exec(l);
        if (m && decodeURI(m[1]!).startsWith(pathPrefix)) n += Number(m[3]);
      }
      return n;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await done;
      }
    },
  };
}
