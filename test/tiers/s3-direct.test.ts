// s3-direct.ts's hand-written HTTP reader against a FAULT-INJECTION server of our own
// (FaultServerForTest on net.createServer: each case scripts the bytes it answers). Real
// sockets on loopback; the signer is a named fake (the server checks no signature). The
// risky cases: a body longer than its Content-Length, a 200 that ignores Range, Content-Range
// that does not match, chunked (FallBack), an error body then keep-alive reuse, the stale
// idle socket retried, a head over HEAD_MAX, interim 1xx answers, bad Content-Length, bytes
// after a whole answer never read as the next GET's.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { BodyError, FallBack, S3Direct } from '../../src/tiers/s3-direct.js';
import type { S3Light, Target } from '../../src/tiers/s3-light.js';

const OBJ = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7 + 3) & 0xff));

/** What the server answers to one request: its range, the connection's number, its socket. */
type Answer = (r: { off: number; len: number; conn: number; n: number }, sock: Socket) => void;

class FaultServerForTest {
  conns = 0;
  reqs = 0;
  answer: Answer = ok206;
  readonly server: Server = createServer((sock) => {
    const conn = ++this.conns;
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i; (i = buf.indexOf('\r\n\r\n')) >= 0; ) {
        const m = /\r\nrange: bytes=(\d+)-(\d+)/i.exec(buf.slice(0, i))!;
        buf = buf.slice(i + 4);
        this.answer({ off: Number(m[1]), len: Number(m[2]) - Number(m[1]) + 1, conn, n: ++this.reqs }, sock);
      }
    });
  });
  get port(): number {
    return (this.server.address() as { port: number }).port;
  }
}

function ok206(r: { off: number; len: number }, sock: Socket): void {
  const body = OBJ.subarray(r.off, r.off + r.len);
  sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nContent-Range: bytes ${r.off}-${r.off + body.length - 1}/${OBJ.length}\r\n\r\n`), body]));
}

describe('s3-direct: the HTTP reader under a fault-injection server', () => {
  const fs = new FaultServerForTest();
  let d: S3Direct;
  let t: Target;
  before(async () => {
    await new Promise<void>((r) => fs.server.listen(0, '127.0.0.1', r));
    const signerForTest = { sign: async (req: unknown) => req } as unknown as Target['signer'];
    t = { https: false, hostname: '127.0.0.1', port: fs.port, host: `127.0.0.1:${fs.port}`, pathPrefix: '/b/', signer: signerForTest };
    d = new S3Direct(null as unknown as S3Light, 1000, 4); // light: only target() reads it
  });
  after(async () => {
    d.close();
    fs.server.close();
  });

  /** GET [off, off + len) into a buffer of its own: the bytes. */
  async function get(off: number, len: number): Promise<Buffer> {
    const dst = Buffer.alloc(len);
    const n = await d.getInto(t, 'k', { offset: off, length: len }, dst, new AbortController().signal);
    return dst.subarray(0, n);
  }
  const fresh = async () => {
    await new Promise((r) => setImmediate(r)); // the last GET's socket is pooled
    d.close();
    d = new S3Direct(null as unknown as S3Light, 1000, 4);
    fs.conns = 0;
  };

  test('a plain 206: exact bytes, the socket kept for the next GET', async () => {
    await fresh();
    fs.answer = ok206;
    assert.deepEqual(await get(10, 100), OBJ.subarray(10, 110));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(await get(OBJ.length - 100, 200), OBJ.subarray(OBJ.length - 100)); // the object ends first
    assert.equal(fs.conns, 1);
  });

  test('a body longer than its Content-Length: BodyError, the socket not reused', async () => {
    await fresh();
    fs.answer = (r, sock) => sock.write(`HTTP/1.1 206 x\r\nContent-Length: 4\r\nContent-Range: bytes ${r.off}-${r.off + 3}/${OBJ.length}\r\n\r\nabcdefgh`);
    await assert.rejects(get(0, 4), BodyError);
    fs.answer = ok206;
    assert.deepEqual(await get(0, 4), OBJ.subarray(0, 4));
    assert.equal(fs.conns, 2);
  });

  test('a 200 that ignores Range: the range cut out of the whole object, with or without a Content-Range', async () => {
    await fresh();
    fs.answer = (_r, sock) => sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${OBJ.length}\r\n\r\n`), OBJ]));
    assert.deepEqual(await get(300, 50), OBJ.subarray(300, 350));
    fs.answer = (r, sock) => sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${OBJ.length}\r\nContent-Range: bytes ${r.off}-${r.off + r.len - 1}/${OBJ.length}\r\n\r\n`), OBJ]));
    assert.deepEqual(await get(300, 50), OBJ.subarray(300, 350));
  });

  test('a 206 whose Content-Range is not the range asked: BodyError, not wrong bytes', async () => {
    await fresh();
    fs.answer = (r, sock) => ok206({ off: r.off + 1, len: r.len }, sock);
    await assert.rejects(get(100, 50), BodyError);
    fs.answer = (r, sock) => sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 206 x\r\nContent-Length: ${r.len}\r\n\r\n`), OBJ.subarray(r.off, r.off + r.len)]));
    await assert.rejects(get(100, 50), BodyError, 'a 206 without Content-Range');
  });

  test('a chunked 2xx: FallBack (s3-light reads it)', async () => {
    await fresh();
    fs.answer = (_r, sock) => sock.write('HTTP/1.1 206 x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n');
    await assert.rejects(get(0, 4), FallBack);
  });

  test('an error body, then the same socket serves the next GET', async () => {
    await fresh();
    const xml = '<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>';
    fs.answer = (_r, sock) => sock.write(`HTTP/1.1 404 Not Found\r\nContent-Length: ${xml.length}\r\n\r\n${xml}`);
    await assert.rejects(get(0, 10), (e: Error) => e.name === 'NoSuchKey');
    fs.answer = ok206;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(await get(0, 10), OBJ.subarray(0, 10));
    assert.equal(fs.conns, 1);
  });

  test('a kept socket the server closes when the next request comes: retried on a fresh one', async () => {
    await fresh();
    fs.answer = (r, sock) => (r.conn === 1 && r.n > 1 ? sock.destroy() : ok206(r, sock));
    fs.reqs = 0;
    assert.deepEqual(await get(0, 10), OBJ.subarray(0, 10));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(await get(5, 10), OBJ.subarray(5, 15));
    assert.equal(fs.conns, 2);
  });

  test('a head over HEAD_MAX: BodyError', async () => {
    await fresh();
    fs.answer = (r, sock) => sock.write(`HTTP/1.1 206 x\r\nX-Pad: ${'p'.repeat(20000)}\r\nContent-Length: ${r.len}\r\n\r\n`);
    await assert.rejects(get(0, 10), BodyError);
  });

  test('interim 100 and 103 answers are dropped, the real one read', async () => {
    await fresh();
    fs.answer = (r, sock) => {
      sock.write('HTTP/1.1 100 Continue\r\n\r\n');
      sock.write('HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n');
      ok206(r, sock);
    };
    assert.deepEqual(await get(20, 30), OBJ.subarray(20, 50));
    fs.answer = (r, sock) => {
      sock.write('HTTP/1.1 100 Continue\r\n\r\n');
      setTimeout(() => ok206(r, sock), 20);
    };
    assert.deepEqual(await get(20, 30), OBJ.subarray(20, 50));
  });

  // n: the body's length by the header the old reader believed (the last, read as Number).
  for (const [what, headers, n] of [
    ['not digits', 'Content-Length: 10abc', 10],
    ['signed', 'Content-Length: +10', 10],
    ['two that differ', 'Content-Length: 10\r\nContent-Length: 12', 12],
  ] as const) {
    test(`a Content-Length ${what}: BodyError, the socket never reused`, async () => {
      await fresh();
      fs.answer = (r, sock) => sock.write(`HTTP/1.1 206 x\r\n${headers}\r\nContent-Range: bytes ${r.off}-${r.off + n - 1}/${OBJ.length}\r\n\r\n${OBJ.subarray(r.off, r.off + n).toString('latin1')}`);
      await assert.rejects(get(0, 12), BodyError);
      fs.answer = ok206;
      assert.deepEqual(await get(0, 10), OBJ.subarray(0, 10));
      assert.equal(fs.conns, 2);
    });
  }

  test('bytes after a whole answer are never read as the next GET\'s answer', async () => {
    await fresh();
    // One write: the answer (its body past the head buffer, read straight into dst), then
    // a forged answer of the next GET's range (all 'Z').
    const forged = `HTTP/1.1 206 x\r\nContent-Length: 10\r\nContent-Range: bytes 0-9/${OBJ.length}\r\n\r\n${'Z'.repeat(10)}`;
    fs.answer = (r, sock) => {
      const body = OBJ.subarray(r.off, r.off + r.len);
      if (r.conn === 1) sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 206 x\r\nContent-Length: ${body.length}\r\nContent-Range: bytes ${r.off}-${r.off + r.len - 1}/${OBJ.length}\r\n\r\n`), body, Buffer.from(forged)]));
      else ok206(r, sock);
    };
    assert.deepEqual(await get(0, 40000), OBJ.subarray(0, 40000));
    assert.deepEqual(await get(0, 10), OBJ.subarray(0, 10));
  });
});
