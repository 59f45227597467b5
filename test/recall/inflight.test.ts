import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEADROOM, InflightRecord } from '../../src/recall/inflight.js';

describe('InflightRecord', () => {
  test('keeps a high-water mark with headroom, rewritten only when fds climb near it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tier-inflight-'));
    try {
      const path = join(dir, 'inflight');
      const r = new InflightRecord(path);
      assert.equal(r.readStale(), 0); // no predecessor
      r.note(5);
      assert.equal(readFileSync(path, 'utf8'), `${5 + HEADROOM}\n`);
      writeFileSync(path, 'sentinel'); // a rewrite would replace it
      r.note(900);
      assert.equal(readFileSync(path, 'utf8'), 'sentinel');
      r.note(1100); // within HEADROOM/2 of the mark: move it up
      assert.equal(readFileSync(path, 'utf8'), `${1100 + HEADROOM}\n`);
      assert.equal(new InflightRecord(path).readStale(), 1100 + HEADROOM);
      writeFileSync(path, 'garbage');
      assert.equal(new InflightRecord(path).readStale(), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
