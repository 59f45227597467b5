// The control client opens a connection per request: with a kept-alive socket, a request
// written just as the server's keep-alive timer closed it failed with EPIPE (seen under
// load in hostile-users' reconcile + gc test). A plain HTTP server on a unix socket counts
// the connections the client makes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectDaemon } from '../../src/daemon/client.js';
import { socketPath } from '../../src/daemon/protocol.js';

test('every control request opens its own connection (no kept-alive socket to race)', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'tier-client-'));
  let connections = 0;
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(req.url === '/health' ? JSON.stringify({ ok: true }) : JSON.stringify({ pid: 1 }));
  });
  server.keepAliveTimeout = 60_000; // the server would keep a socket: only the client can choose not to
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(socketPath(stateDir), r));
  try {
    const client = await connectDaemon(stateDir);
    assert.ok(client);
    await client.status();
    await client.health();
    assert.equal(connections, 3);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(stateDir, { recursive: true, force: true });
  }
});
