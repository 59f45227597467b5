// FAULT INJECTION: a loopback TCP proxy in front of the real RGW that can go down (close
// listener + reset connections, as a stopped server) or stall (accept and hold, never answer)
// on command or after N bytes in one direction. The S3 server behind it stays real.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

type Dir = 'up' | 'down'; // up: client -> server (uploads), down: server -> client (downloads)
type Fault = 'down' | 'stall';

export class FaultProxy {
  bytes: Record<Dir, number> = { up: 0, down: 0 };
  private readonly sockets = new Set<Socket>();
  private stalled = false;
  private isDown = false;
  private trigger: { dir: Dir; after: number; fault: Fault } | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetHost: string, targetPort: number): Promise<FaultProxy> {
    const server = createServer();
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const p = new FaultProxy(server, port);
    server.on('connection', (c) => p.accept(c, targetHost, targetPort));
    return p;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Inject `fault` once `after` bytes have passed in direction `dir`. */
  after(dir: Dir, after: number, fault: Fault): void {
    this.trigger = { dir, after: this.bytes[dir] + after, fault };
  }

  stall(): void {
    this.stalled = true;
    for (const s of this.sockets) s.pause();
  }

  down(): void {
    this.isDown = true;
    this.server.close();
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    if (!this.isDown) this.down();
  }

  private accept(client: Socket, host: string, port: number): void {
    if (this.isDown) return void client.resetAndDestroy();
    this.sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => this.sockets.delete(client));
    if (this.stalled) return void client.pause(); // accepted, never answered
    const server = createConnection({ host, port });
    this.sockets.add(server);
    server.on('error', () => client.destroy());
    server.on('close', () => {
      this.sockets.delete(server);
      client.destroy();
    });
    client.on('close', () => server.destroy());
    this.forward(client, server, 'up');
    this.forward(server, client, 'down');
  }

  private forward(src: Socket, dst: Socket, dir: Dir): void {
    src.on('data', (chunk: Buffer) => {
      if (this.stalled || this.isDown) return; // a held or dead link loses what is in flight
      const t = this.trigger;
      if (t && t.dir === dir && this.bytes[dir] + chunk.length >= t.after) {
        const n = Math.max(0, t.after - this.bytes[dir]);
        this.bytes[dir] += n;
        if (n) dst.write(chunk.subarray(0, n));
        this.trigger = undefined;
        if (t.fault === 'down') this.down();
        else this.stall();
        return;
      }
      this.bytes[dir] += chunk.length;
      if (!dst.write(chunk)) {
        src.pause();
        dst.once('drain', () => this.stalled || src.resume());
      }
    });
  }
}
