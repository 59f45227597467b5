// The rest of a file comes in the background once at least half of it is here and what is
// missing fits in one read-ahead window (handler.ts restWanted): scattered reads over half
// a file end with the file whole and unmarked; fewer leave it partial.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { restWanted } from '../../src/recall/handler.js';
import { ResidentMap } from '../../src/chunks/resident.js';
import { makeReleased, pattern, run, startHarness, stateOf, type Harness } from './harness.js';

const KiB = 1024;

describe('restWanted (pure)', () => {
  const entry = (chunks: number, resident: number, fetching = 0, over: Record<string, unknown> = {}) => {
    const map = new ResidentMap(chunks);
    for (let i = 0; i < resident; i++) map.set(i);
    const f = new Map<number, Promise<void>>();
    for (let i = resident; i < resident + fetching; i++) f.set(i, Promise.resolve());
    return { copy: { chunk: 16 * KiB, sparse: false, ...over }, resident: map, fetching: f, diverged: false, rest: false } as unknown as Parameters<typeof restWanted>[0];
  };
  test('half here (resident or fetching) and the rest within the window: yes', () => {
    assert.equal(restWanted(entry(100, 50), 50 * 16 * KiB), true);
    assert.equal(restWanted(entry(100, 30, 20), 50 * 16 * KiB), true);
  });
  test('less than half, a rest past the window, whole, or asked once already: no', () => {
    assert.equal(restWanted(entry(100, 49), 64 * 1024 * KiB), false);
    assert.equal(restWanted(entry(100, 50), 49 * 16 * KiB), false, 'the rest is larger than one window');
    assert.equal(restWanted(entry(100, 100), 64 * 1024 * KiB), false);
    assert.equal(restWanted({ ...entry(100, 60), rest: true }, 64 * 1024 * KiB), false);
  });
  test('a diverged file (recalled whole anyway) or a sparse copy: no', () => {
    assert.equal(restWanted({ ...entry(100, 60), diverged: true }, 64 * 1024 * KiB), false);
    assert.equal(restWanted(entry(100, 60, 0, { sparse: true }), 64 * 1024 * KiB), false);
  });
});

// Every other 16 KiB chunk of a 4 MiB file, one 4 KiB read each, in a scattered order (no
// stream, no read-ahead): each read fetches its own chunk.
const PY_SCATTER = `import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
n = int(sys.argv[2])
out = bytearray()
for k in range(n):
    i = (k * 37) % n
    out += os.pread(fd, 4096, i * 32768)
sys.stdout.buffer.write(out)`;

describe('scattered reads over half a released file (ext4, local tier, 16 KiB chunks)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ tuning: { chunk: 16 * KiB, readahead: 4 * 1024 * KiB } });
  });
  after(async () => h.close());

  const expect = (data: Buffer, n: number) => Buffer.concat(Array.from({ length: n }, (_, k) => data.subarray(((k * 37) % n) * 32768, ((k * 37) % n) * 32768 + 4096)));

  /** A released 4 MiB file read by PY_SCATTER over `n` of its even chunks, byte-exact; settled after. */
  const scatterRead = async (name: string, seed: number, n: number) => {
    const data = pattern(4096 * KiB, seed);
    const path = await makeReleased(h, name, data);
    const r = await run('python3', ['-c', PY_SCATTER, path, String(n)]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(expect(data, n)), 'byte-exact');
    await h.svc.settled(); // the rest's fetches (if any) and the completion's record
    return { path, data };
  };

  test('every other chunk read: the rest is fetched and the file ends whole (archived, unmarked)', async () => {
    const { path, data } = await scatterRead('half.bin', 71, 128);
    assert.equal((await stateOf(path))?.state, 'archived', 'half read, the rest fetched: whole');
    const all = await run('cat', [path]);
    assert.ok(all.stdout.equals(data), 'byte-exact whole');
  });

  test('a third of the chunks read: the file stays partial', async () => {
    const { path } = await scatterRead('third.bin', 72, 85);
    assert.equal((await stateOf(path))?.state, 'partial');
  });
});
