import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, renameSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { LocalTier } from '../../src/tiers/local.js';
import { fsetxattr } from '../../src/kernel/libc.js';
import { encodeRecord, sumsKey, XATTR_STATE, type StateRecord } from '../../src/engine/state-record.js';
import { newKey } from '../../src/engine/execute.js';
import { collectGarbage, ENGINE_KEY, ORPHANS_FILE } from '../../src/gc/gc.js';
import { gcWithPolicy, retentionByTier } from '../../src/gc/gc-policy.js';
import type { Tier } from '../../src/tiers/tier.js';
import { parsePolicy } from '../../src/dsl/index.js';
import { Catalog } from '../../src/engine/catalog.js';

const D = 86_400_000;
const KEEP = 2 * D;

let base: string;
let data: string;
let outside: string;
let tierDir: string;
let state: string;
let tier: LocalTier;

async function putObject(key: string, content: string, path: string): Promise<void> {
  const buf = Buffer.from(content);
  const sha256 = createHash('sha256').update(buf).digest('hex');
  await tier.put(key, Readable.from([buf]), buf.length, { sha256, size: buf.length, path, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 });
}

function ageObject(key: string, ms: number): void {
  const t = new Date(Date.now() - ms);
  utimesSync(join(tierDir, key), t, t);
}

function writeManaged(path: string, key: string): void {
  writeFileSync(path, 'x');
  const rec: StateRecord = { v: 1, state: 'archived', pinned: false, gen: 1, copy: { tier: 'cold', key, size: 1, mtimeNs: '0', sha256: '0', archivedAt: 0, chunk: 4 << 20 } };
  const fd = openSync(path, 'r');
  try {
    fsetxattr(fd, XATTR_STATE, encodeRecord(rec), path);
  } finally {
    closeSync(fd);
  }
}

const keys = { live: newKey(), renamed: newKey(), catalogOnly: newKey(), movedOut: newKey(), deleted: newKey(), fresh: newKey() };

before(async () => {
  base = mkdtempSync(join(tmpdir(), 'tier-gc-'));
  data = join(base, 'data');
  outside = join(base, 'outside');
  tierDir = join(base, 'tier');
  state = join(base, 'state');
  for (const d of [data, outside, tierDir, state, join(data, 'sub')]) mkdirSync(d, { recursive: true });
  tier = new LocalTier('cold', tierDir);
  for (const [name, key] of Object.entries(keys)) await putObject(key, name, join(data, name));
  await putObject('manual/backup.tar', 'not ours', '/x');
  for (const key of [...Object.values(keys), 'manual/backup.tar']) ageObject(key, 10 * D);
  // `fresh` was just uploaded: its record is not written yet.
  const soon = new Date(Date.now() + 10 * D);
  utimesSync(join(tierDir, keys.fresh), soon, soon);
  writeManaged(join(data, 'live'), keys.live);
  writeManaged(join(data, 'renamed'), keys.renamed);
  renameSync(join(data, 'renamed'), join(data, 'sub', 'renamed-later')); // rename keeps the key
  writeManaged(join(outside, 'moved'), keys.movedOut);
  writeManaged(join(data, 'deleted'), keys.deleted);
  unlinkSync(join(data, 'deleted'));
});
after(() => rmSync(base, { recursive: true, force: true }));

// The object of `movedOut` records its archive-time path; point it at where the file is now.
async function relocateMovedOut(): Promise<void> {
  await tier.delete(keys.movedOut);
  await putObject(keys.movedOut, 'movedOut', join(outside, 'moved'));
  ageObject(keys.movedOut, 10 * D);
}

describe('tier gc', () => {
  const run = (now: number, dryRun = false, roots = [data]) =>
    collectGarbage({
      tiers: new Map([['cold', tier]]),
      keepDeleted: new Map([['cold', KEEP]]),
      catalogRefs: [{ tier: 'cold', key: keys.catalogOnly }, { tier: null, key: null }],
      roots,
      stateDir: state,
      now,
      dryRun,
    });

  test('first pass: only the deleted file\'s object (and the fresh upload) are orphans, kept for the retention', async () => {
    await relocateMovedOut();
    const r = await run(Date.now());
    const t = r.tiers[0]!;
    assert.equal(t.listed, 7);
    assert.equal(t.foreign, 1);
    assert.deepEqual(t.orphans.map((o) => [o.key, o.fate]).sort(), [[keys.deleted, 'kept: retention'], [keys.fresh, 'kept: retention'], [keys.movedOut, 'kept: retention']].sort());
    assert.equal(r.deleted, 0);
    const seen = JSON.parse(readFileSync(join(state, ORPHANS_FILE), 'utf8'));
    assert.ok(seen.cold[keys.deleted]);
  });

  test('dry run past the retention: says what it would delete, deletes nothing, records nothing', async () => {
    const before = readFileSync(join(state, ORPHANS_FILE), 'utf8');
    const r = await run(Date.now() + KEEP + 1000, true);
    const fates = Object.fromEntries(r.tiers[0]!.orphans.map((o) => [o.key, o.fate]));
    assert.equal(fates[keys.deleted], 'would delete');
    assert.equal(existsSync(join(tierDir, keys.deleted)), true);
    assert.equal(readFileSync(join(state, ORPHANS_FILE), 'utf8'), before);
  });

  test('past the retention: the deleted file\'s object goes; renamed, moved-out, catalogued, fresh and foreign stay', async () => {
    const r = await run(Date.now() + KEEP + 1000);
    const fates = Object.fromEntries(r.tiers[0]!.orphans.map((o) => [o.key, o.fate]));
    assert.deepEqual(fates, { [keys.deleted]: 'deleted', [keys.fresh]: 'kept: retention' });
    assert.equal(r.deleted, 1);
    assert.equal(existsSync(join(tierDir, keys.deleted)), false);
    assert.equal(existsSync(join(tierDir, keys.deleted + '.meta.json')), false);
    for (const k of [keys.live, keys.renamed, keys.catalogOnly, keys.movedOut, keys.fresh, 'manual/backup.tar']) assert.ok(existsSync(join(tierDir, k)), k);
  });

  test('a root that cannot be scanned: nothing is deleted', async () => {
    const k = newKey();
    await putObject(k, 'orphan', join(data, 'gone'));
    ageObject(k, 10 * D);
    await run(Date.now()); // first seen
    const r = await run(Date.now() + KEEP + 1000, false, [data, join(base, 'no-such-root')]);
    assert.equal(r.scanErrors.length, 1);
    assert.match(r.scanErrors[0]!.path, /no-such-root/);
    assert.equal(r.tiers[0]!.orphans.find((o) => o.key === k)?.fate, 'kept: scan incomplete');
    assert.ok(existsSync(join(tierDir, k)));
  });

  test('a catalog row of a deleted file is no reference on a scanned filesystem; elsewhere it still is', async () => {
    const gone = newKey();
    const unsure = newKey();
    for (const k of [gone, unsure]) {
      await putObject(k, k, join(data, 'deleted-later'));
      ageObject(k, 10 * D);
    }
    const dev = statSync(data).dev;
    const refs = [
      { tier: 'cold', key: gone, path: join(data, 'deleted-later'), dev },
      { tier: 'cold', key: unsure, path: '/elsewhere/x', dev: dev + 12345 },
    ];
    const go = (now: number) =>
      collectGarbage({ tiers: new Map([['cold', tier]]), keepDeleted: new Map([['cold', KEEP]]), catalogRefs: refs, roots: [data], stateDir: join(base, 'state2'), now, dryRun: false });
    await go(Date.now());
    const r = await go(Date.now() + KEEP + 1000);
    const fates = Object.fromEntries(r.tiers[0]!.orphans.map((o) => [o.key, o.fate]));
    assert.equal(fates[gone], 'deleted');
    assert.equal(fates[unsure], undefined, 'a row on a filesystem the scan did not cover still counts');
    assert.ok(existsSync(join(tierDir, unsure)));
  });

  test('a row change tracking marked deleted is no reference; retention counts from its deleted_at; its row may go with the object', async () => {
    const early = newKey();
    const recent = newKey();
    for (const k of [early, recent]) {
      await putObject(k, k, join(data, `tracked-${k.slice(3, 8)}`));
      ageObject(k, 10 * D);
    }
    const now = Date.now();
    const refs = [
      { tier: 'cold', key: early, path: join(data, 'x1'), dev: 1, ino: 11, deletedAt: now - KEEP - 1000 },
      { tier: 'cold', key: recent, path: join(data, 'x2'), dev: 1, ino: 12, deletedAt: now - 1000 },
    ];
    const go = (dryRun: boolean) =>
      collectGarbage({ tiers: new Map([['cold', tier]]), keepDeleted: new Map([['cold', KEEP]]), catalogRefs: refs, roots: [data], stateDir: join(base, 'state3'), now, dryRun });
    const dry = await go(true);
    assert.deepEqual(dry.forget, [], 'a dry run forgets nothing');
    // First gc run ever for these objects: only the deletion time can make one due.
    const r = await go(false);
    const fates = Object.fromEntries(r.tiers[0]!.orphans.map((o) => [o.key, o.fate]));
    assert.equal(fates[early], 'deleted');
    assert.equal(fates[recent], 'kept: retention');
    assert.equal(r.tiers[0]!.orphans.find((o) => o.key === recent)!.firstSeen, now - 1000, 'first seen = deleted_at');
    assert.deepEqual(r.forget, [{ dev: 1, ino: 11, key: early }], 'the row whose object is gone');
  });

  test('engine keys have the shape gc deletes', () => {
    for (let i = 0; i < 20; i++) assert.match(newKey(), ENGINE_KEY);
    assert.doesNotMatch('manual/backup.tar', ENGINE_KEY);
  });

  test('retention per tier: the longest keep_deleted of the policies that send data there, else 30d', () => {
    const pf = parsePolicy(
      `tier a { local "/a" }
tier b { local "/b" }
tier c { local "/c" }
fileset f { root "/r" }
policy p1 on f { keep_deleted 7d rule r: size > 1MiB -> archive to a }
policy p2 on f { keep_deleted 14d rule r: size > 1MiB -> release to a
  rule s: size > 0 -> archive to b }
policy p3 on f { rule r: size > 0 -> archive to c }`,
      'p',
    ).policy!;
    assert.deepEqual(Object.fromEntries(retentionByTier(pf)), { a: 14 * D, b: 14 * D, c: 30 * D });
  });
});

describe('tier gc: chunk sums objects follow their copy', () => {
  test('referenced with their object, deleted with it, an orphan alone only when their object is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tier-gc-sums-'));
    try {
      const d = join(dir, 'data');
      const t = join(dir, 'tier');
      mkdirSync(d);
      mkdirSync(t);
      const lt = new LocalTier('cold', t);
      const put = async (key: string, path: string) => {
        const buf = Buffer.from(key);
        await lt.put(key, Readable.from([buf]), buf.length, { sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length, path, mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 });
        const old = new Date(Date.now() - 10 * D);
        utimesSync(join(t, key), old, old);
      };
      const live = newKey();
      const dead = newKey();
      const lone = newKey(); // its object is already gone
      await put(live, join(d, 'live'));
      await put(sumsKey(live), join(d, 'live'));
      await put(dead, join(d, 'dead'));
      await put(sumsKey(dead), join(d, 'dead'));
      await put(sumsKey(lone), join(d, 'lone'));
      const rec: StateRecord = { v: 1, state: 'released', pinned: false, gen: 1, copy: { tier: 'cold', key: live, size: 1, mtimeNs: '0', sha256: '0', archivedAt: 0, chunk: 4 << 20 } };
      writeFileSync(join(d, 'live'), 'x');
      const fd = openSync(join(d, 'live'), 'r');
      fsetxattr(fd, XATTR_STATE, encodeRecord(rec), join(d, 'live'));
      closeSync(fd);
      const go = (now: number) =>
        collectGarbage({ tiers: new Map([['cold', lt]]), keepDeleted: new Map([['cold', KEEP]]), catalogRefs: [], roots: [d], stateDir: join(dir, 'state'), now, dryRun: false });
      const first = await go(Date.now());
      assert.equal(first.tiers[0]!.referenced, 2, 'the live object and its sums');
      assert.equal(first.tiers[0]!.foreign, 0, 'sums of engine keys are not foreign');
      assert.deepEqual(first.tiers[0]!.orphans.map((o) => o.key).sort(), [dead, sumsKey(dead), sumsKey(lone)].sort());
      const r = await go(Date.now() + KEEP + 1000);
      // `dead`'s sums go along with it (counted with their object when the listing meets them after it).
      assert.ok(r.deleted >= 2, JSON.stringify(r.tiers[0]!.orphans));
      assert.equal(r.tiers[0]!.orphans.find((o) => o.key === dead)?.fate, 'deleted');
      for (const k of [dead, sumsKey(dead), sumsKey(lone)]) assert.equal(existsSync(join(t, k)), false, `${k} deleted`);
      for (const k of [live, sumsKey(live)]) assert.ok(existsSync(join(t, k)), `${k} kept`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tier gc (CLI)', () => {
  test('--dry-run over a policy file with a LocalTier and a real catalog', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tier-gc-cli-'));
    try {
      const d = join(dir, 'data');
      const t = join(dir, 'tier');
      const st = join(dir, 'state');
      mkdirSync(d);
      mkdirSync(t);
      const lt = new LocalTier('cold', t);
      const k = newKey();
      const buf = Buffer.from('orphan');
      await lt.put(k, Readable.from([buf]), buf.length, { sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length, path: join(d, 'x'), mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 });
      new Catalog(join(st, 'catalog.db')).close();
      const pfile = join(dir, 'p.hsmpolicy');
      writeFileSync(pfile, `tier cold { local "${t}" }\nfileset f { root "${d}" }\npolicy p on f { keep_deleted 1d rule r: size > 0 -> archive to cold }\n`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'gc', '--dry-run', '--config', pfile, '--state-dir', st], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /tier cold: 1 objects, 0 referenced, 1 orphaned/);
      assert.match(r.stdout, new RegExp(`kept: retention +${k}`));
      assert.match(r.stdout, /dry run: nothing deleted/);
      const bad = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'gc', '--config', join(dir, 'missing.hsmpolicy')], { encoding: 'utf8' });
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /cannot read policy .*missing\.hsmpolicy: no such file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tier gc and a reused inode number', () => {
  test('a deleted row is forgotten with its object, but not when a file that reused its inode number was released during the run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tier-gc-reuse-'));
    try {
      const d = join(dir, 'data');
      const t = join(dir, 'tier');
      const st = join(dir, 'state');
      mkdirSync(d);
      mkdirSync(t);
      const lt = new LocalTier('cold', t);
      const [old1, old2, fresh] = [newKey(), newKey(), newKey()];
      for (const k of [old1, old2]) {
        const buf = Buffer.from(k);
        await lt.put(k, Readable.from([buf]), buf.length, { sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length, path: join(d, 'gone'), mode: 0o644, uid: 0, gid: 0, mtimeMs: 0 });
        const a = new Date(Date.now() - 10 * D);
        utimesSync(join(t, k), a, a);
      }
      const now = Date.now();
      const row = (ino: number, key: string, path: string) => ({ dev: 1, ino, path, state: 'released' as const, pinned: false, tier: 'cold', key, size: 1, sha256: null, archivedAt: 1, updatedAt: 1 });
      const cat = new Catalog(join(st, 'catalog.db'));
      try {
        cat.upsert(row(11, old1, join(d, 'gone1')));
        cat.upsert(row(12, old2, join(d, 'gone2')));
        cat.markDeleted(1, 11, now - 3 * D);
        cat.markDeleted(1, 12, now - 3 * D);
        // Fault injection: while gc lists the tier (after its catalog snapshot), a new file
        // that got inode 12 is released: the engine's upsert revives row 12 with its key.
        const raceTier: Tier = Object.assign(Object.create(lt) as Tier, {
          async *list(prefix: string, signal?: AbortSignal) {
            cat.upsert(row(12, fresh, join(d, 'new')));
            yield* lt.list(prefix, signal);
          },
        });
        const pf = parsePolicy(`tier cold { local "${t}" }\nfileset f { root "${d}" }\npolicy p on f { keep_deleted 1d rule r: size > 0 -> release to cold }\n`, join(dir, 'p.hsmpolicy')).policy!;
        const r = await gcWithPolicy(pf, { config: pf.file, stateDir: st, now }, new Map([['cold', raceTier]]));
        assert.equal(r.deleted, 2, 'both deleted files\' objects are collected');
        assert.equal(cat.get(1, 11), null, 'a deleted row whose object is gone is forgotten');
        const revived = cat.get(1, 12);
        assert.ok(revived, 'the released file that reused inode 12 keeps its row (start-up marking needs it)');
        assert.equal(revived.key, fresh);
        assert.equal(revived.deletedAt, null);
        assert.deepEqual([...cat.releasedFiles()].map((x) => x.path), [join(d, 'new')]);
      } finally {
        cat.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
