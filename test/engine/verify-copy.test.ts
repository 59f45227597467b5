// hashFd (verify-copy.ts): a hash is only a verdict on the file if the lease held to the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { hashFd } from '../../src/engine/verify-copy.js';

test('a break during the read at end of file fails the hash instead of passing a partial one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tier-hashfd-'));
  try {
    const f = join(dir, 'empty');
    writeFileSync(f, '');
    const fd = openSync(f, 'r');
    try {
      const ac = new AbortController();
      const p = hashFd(fd, ac.signal); // its first read (at EOF) is in flight on the threadpool
      ac.abort(new Error('lease broken'));
      await assert.rejects(p, /lease broken/);
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unbroken hash is the SHA-256 of the whole file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tier-hashfd-'));
  try {
    const f = join(dir, 'data');
    const data = Buffer.alloc(3 * 1024 * 1024 + 7, 0x5a);
    writeFileSync(f, data);
    const fd = openSync(f, 'r');
    try {
      const r = await hashFd(fd, new AbortController().signal);
      assert.equal(r.bytes, data.length);
      assert.equal(r.sha256, createHash('sha256').update(data).digest('hex'));
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
