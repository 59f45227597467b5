// The catalog follows a recall: a released file read whole through the daemon has its row
// say `archived` at once (reports count it right), not only after the next reconcile pass;
// a file read in part stays `released`/`partial` in the catalog as on disk. ext4.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { openCatalog } from '../../src/engine/catalog.js';
import { daemonLayout, pattern, readAt, releaseByHand, startDaemon, within, type DaemonProc } from '../helpers/daemon.js';

const MiB = 1024 * 1024;

describe('the catalog follows a recall', () => {
  let fs: LoopFs;
  let d: DaemonProc;
  let stateDir: string;
  let data: string;
  const rowState = (p: string) => {
    const c = openCatalog(join(stateDir, 'catalog.db'));
    try {
      return c.rowByPath(p)?.state ?? null;
    } finally {
      c.close();
    }
  };

  before(async () => {
    fs = mountLoopFs('ext4');
    let tierDir: string;
    let policy: string;
    ({ stateDir, tierDir, data, policy } = daemonLayout(fs));
    for (const [name, seed] of [['whole.bin', 91], ['part.bin', 92]] as const) {
      writeFileSync(join(data, name), pattern(3 * MiB + 11, seed));
      await releaseByHand(join(data, name), 'slow', tierDir, stateDir);
    }
    // No pass after the start one: only the recall service can move the rows.
    d = startDaemon([policy], stateDir);
    await d.ready;
    await d.waitLog((l) => l.msg === 'reconcile pass done');
  });

  after(async () => {
    await d?.stop();
    fs?.unmount();
  });

  test('read whole: the row says archived; read in part: the row is unchanged', async () => {
    assert.equal(rowState(join(data, 'whole.bin')), 'released');
    assert.ok(readFileSync(join(data, 'whole.bin')).equals(pattern(3 * MiB + 11, 91)));
    await within('the row of the whole read says archived', 15_000, () => rowState(join(data, 'whole.bin')) === 'archived');
    assert.ok((await readAt(join(data, 'part.bin'), MiB, 4096)).equals(pattern(3 * MiB + 11, 92).subarray(MiB, MiB + 4096)));
    assert.equal(rowState(join(data, 'part.bin')), 'released', 'a part read changes no row');
  });
});
