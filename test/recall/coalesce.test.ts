// fill.ts coalesce(): a run's consecutive chunk writes become one pwrite only where both
// the file offsets and the memory continue each other; a crash-lost chunk's hole writes
// (join: false) and writes from different buffers stay apart. Pure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coalesce } from '../../src/recall/fill.js';

const bytes = (ws: ReturnType<typeof coalesce>) => ws.map((w) => Buffer.from(w.buf.subarray(w.off, w.off + w.len)));

test('views of one GET buffer at consecutive offsets merge into one write of the same bytes', () => {
  const got = Buffer.from([...Array(12).keys()]);
  const ws = [0, 1, 2].map((k) => ({ buf: got.subarray(k * 4, k * 4 + 4), off: 0, at: 100 + k * 4, len: 4, join: true }));
  const out = coalesce(ws);
  assert.equal(out.length, 1);
  assert.deepEqual({ at: out[0]!.at, len: out[0]!.len }, { at: 100, len: 12 });
  assert.deepEqual(bytes(out)[0], got);
});

test('no merge across a file gap, a memory gap, another buffer, or a hole-by-hole write', () => {
  // Buffer.alloc: never from the shared pool (pooled small buffers may sit side by side
  // in one ArrayBuffer, where a merge would be right but not what this test looks at).
  const got = Buffer.alloc(16);
  got.forEach((_, i) => (got[i] = i));
  const other = Buffer.alloc(4, 9);
  const ws = [
    { buf: got.subarray(0, 4), off: 0, at: 0, len: 4, join: true },
    { buf: got.subarray(4, 8), off: 0, at: 8, len: 4, join: true }, // file gap
    { buf: got.subarray(12, 16), off: 0, at: 12, len: 4, join: true }, // memory gap (8..12 skipped)
    { buf: other, off: 0, at: 16, len: 4, join: true }, // another buffer
    { buf: got, off: 0, at: 20, len: 2, join: false }, // a lost chunk's hole
    { buf: got, off: 2, at: 22, len: 2, join: false },
  ];
  const out = coalesce(ws);
  assert.equal(out.length, 6);
  assert.deepEqual(bytes(out), bytes(ws));
});

test('a partial last piece (truncated file) merges with its predecessor', () => {
  const got = Buffer.from([...Array(8).keys()]);
  const out = coalesce([
    { buf: got.subarray(0, 4), off: 0, at: 0, len: 4, join: true },
    { buf: got.subarray(4, 8), off: 0, at: 4, len: 3, join: true },
  ]);
  assert.equal(out.length, 1);
  assert.deepEqual(bytes(out)[0], got.subarray(0, 7));
});
