// The one contract suite every tier runs (rclone fstests / restic backend tests style).
// Each case asserts bytes (SHA-256) or typed errors, so a wrong tier fails it.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { isTierError, readInto, type ObjectMeta, type Tier, type TierErrorCode } from '../../src/tiers/tier.js';

export interface ContractOptions {
  /** The tier's multipart part size (sizes around it are tested); any value for tiers without parts. */
  partSize: number;
}

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export function bodyOf(buf: Buffer, chunk = MiB): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
    })(),
  );
}

export function metaFor(buf: Buffer, path = '/data/file'): ObjectMeta {
  return { sha256: '', size: buf.length, path, mode: 0o100640, uid: 1001, gid: 1002, mtimeMs: 1_700_000_000_123 };
}

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function rejectsWith(p: Promise<unknown>, code: TierErrorCode, permanent?: boolean): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isTierError(e), `expected a TierError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (permanent !== undefined) assert.equal(e.permanent, permanent);
    return true;
  });
}

/** A body that yields `first` and then waits forever (until destroyed). */
function stallingBody(first: Buffer): { body: Readable; consumed: Promise<void> } {
  let signal!: () => void;
  const consumed = new Promise<void>((r) => (signal = r));
  let sent = false;
  const body = new Readable({
    read() {
      if (sent) return void signal();
      sent = true;
      this.push(first);
    },
  });
  return { body, consumed };
}

async function keysUnder(tier: Tier, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of tier.list(prefix)) keys.push(o.key);
  return keys.sort();
}

export function tierContract(name: string, makeTier: () => Promise<Tier>, opts: ContractOptions): void {
  describe(`tier contract: ${name}`, () => {
    let tier: Tier;
    const run = randomBytes(4).toString('hex'); // keys unique per run: tiers may be shared
    const k = (s: string) => `c-${run}/${s}`;

    before(async () => {
      tier = await makeTier();
    });
    after(async () => {
      await tier?.close();
    });

    const sizes: [string, number][] = [
      ['0 B', 0],
      ['1 B', 1],
      ['exactly a part', opts.partSize],
      ['a part + 1 B', opts.partSize + 1],
      ['64 MiB', 64 * MiB],
    ];
    for (const [label, size] of sizes) {
      test(`round trip ${label}`, async () => {
        const data = randomBytes(size);
        const key = k(`rt/${size}`);
        const res = await tier.put(key, bodyOf(data), size, metaFor(data));
        assert.equal(res.sha256, sha(data));
        assert.equal(res.size, size);
        const info = await tier.stat(key);
        assert.equal(info?.size, size);
        assert.equal(sha(await collect(await tier.getStream(key))), sha(data));
        if (size <= 8 * MiB) assert.ok((await tier.get(key)).equals(data));
      });
    }

    test('metadata round trip through stat().meta', async () => {
      const data = randomBytes(1000);
      const key = k('meta/one');
      const meta = metaFor(data, '/srv/projects/report final.pdf');
      await tier.put(key, bodyOf(data), data.length, meta);
      const info = await tier.stat(key);
      assert.deepEqual(info?.meta, { ...meta, sha256: sha(data) });
    });

    test('ranges at start, middle, end, across and past the end', async () => {
      const data = randomBytes(100_000);
      const key = k('ranges');
      await tier.put(key, bodyOf(data, 7777), data.length, metaFor(data));
      const cases: [number, number, Buffer][] = [
        [0, 100, data.subarray(0, 100)],
        [40_000, 12_345, data.subarray(40_000, 52_345)],
        [99_900, 100, data.subarray(99_900)],
        [99_950, 100, data.subarray(99_950)], // across the end: what exists
        [100_000, 10, Buffer.alloc(0)], // at the end
        [200_000, 10, Buffer.alloc(0)], // past the end
        [500, 0, Buffer.alloc(0)], // empty range
      ];
      for (const [offset, length, want] of cases) {
        const got = await tier.get(key, { offset, length });
        assert.ok(got.equals(want), `get ${offset}+${length}: ${got.length} bytes, want ${want.length}`);
        const streamed = await collect(await tier.getStream(key, { offset, length }));
        assert.ok(streamed.equals(want), `getStream ${offset}+${length}: ${streamed.length} bytes`);
        // Into a caller's buffer (recall's runs): the same bytes from its start, the rest untouched.
        const dst = Buffer.alloc(length + 8, 0xee);
        const n = await readInto(tier, key, { offset, length }, dst);
        assert.equal(n, want.length, `readInto ${offset}+${length}: count`);
        assert.ok(dst.subarray(0, n).equals(want), `readInto ${offset}+${length}: bytes`);
        assert.ok(dst.subarray(n).every((b) => b === 0xee), `readInto ${offset}+${length}: nothing past the count`);
      }
    });

    test('missing key: NotFound (permanent) from get and getStream, null from stat', async () => {
      const key = k('missing/nothing-here');
      await rejectsWith(tier.get(key), 'NotFound', true);
      await rejectsWith(tier.get(key, { offset: 0, length: 10 }), 'NotFound', true);
      await rejectsWith(tier.getStream(key), 'NotFound', true);
      assert.equal(await tier.stat(key), null);
      await assert.rejects(tier.get(key), (e: unknown) => {
        assert.ok(isTierError(e) && e.tier === tier.name && e.key === key && e.op === 'get');
        assert.match(e.message, new RegExp(`tier ${tier.name}: get`));
        return true;
      });
    });

    test('delete: missing key succeeds; existing key goes away', async () => {
      await tier.delete(k('del/never-was'));
      const data = randomBytes(10);
      await tier.put(k('del/x'), bodyOf(data), 10, metaFor(data));
      await tier.delete(k('del/x'));
      assert.equal(await tier.stat(k('del/x')), null);
      await rejectsWith(tier.get(k('del/x')), 'NotFound');
      await tier.delete(k('del/x'));
    });

    test('list pages through every key under a prefix exactly once', async () => {
      const want: string[] = [];
      for (let i = 0; i < 7; i++) {
        const key = k(`list/item-${i}`);
        const data = randomBytes(i + 1);
        await tier.put(key, bodyOf(data), data.length, metaFor(data));
        want.push(key);
      }
      const outside = randomBytes(3);
      await tier.put(k('listx/other'), bodyOf(outside), 3, metaFor(outside));
      const seen: string[] = [];
      for await (const o of tier.list(k('list/'))) {
        seen.push(o.key);
        assert.equal(o.size, Number(o.key.slice(-1)) + 1);
      }
      assert.deepEqual(seen.sort(), want.sort());
      assert.deepEqual(await keysUnder(tier, k('list')), [...want, k('listx/other')].sort());
    });

    test('concurrent puts: distinct keys all land; same key ends whole', async () => {
      const datas = Array.from({ length: 8 }, (_, i) => randomBytes(MiB + i * 1000));
      await Promise.all(datas.map((d, i) => tier.put(k(`conc/${i}`), bodyOf(d, 64 * 1024), d.length, metaFor(d))));
      for (const [i, d] of datas.entries()) assert.equal(sha(await tier.get(k(`conc/${i}`))), sha(d));
      const rivals = datas.slice(0, 4);
      await Promise.all(rivals.map((d) => tier.put(k('conc/same'), bodyOf(d, 64 * 1024), d.length, metaFor(d))));
      const final = sha(await tier.get(k('conc/same')));
      assert.ok(rivals.some((d) => sha(d) === final), 'same-key object is one of the bodies, whole');
    });

    for (const [label, size] of [
      ['small', 64 * 1024],
      ['multipart', opts.partSize * 2 + 17],
    ] as const) {
      test(`interrupted put (${label}): abort mid-stream leaves nothing visible`, async () => {
        const key = k(`abort/${label}`);
        const ac = new AbortController();
        const { body, consumed } = stallingBody(randomBytes(Math.min(size - 1, opts.partSize + 5)));
        const p = tier.put(key, body, size, metaFor(Buffer.alloc(size)), ac.signal);
        await consumed;
        ac.abort();
        await rejectsWith(p, 'Aborted', false);
        assert.equal(await tier.stat(key), null);
        assert.deepEqual(await keysUnder(tier, k('abort/')), []);
      });

      test(`interrupted put (${label}): a failing body leaves the previous object whole`, async () => {
        const key = k(`fail/${label}`);
        const old = randomBytes(1234);
        await tier.put(key, bodyOf(old), old.length, metaFor(old));
        const part = randomBytes(Math.min(size - 1, opts.partSize + 5));
        const body = Readable.from(
          (async function* () {
            yield part;
            throw new Error('source read failed (fault injection)');
          })(),
        );
        await assert.rejects(tier.put(key, body, size, metaFor(Buffer.alloc(size))), (e: unknown) => {
          assert.ok(isTierError(e), String(e));
          assert.equal(e.key, key);
          return true;
        });
        assert.equal(sha(await tier.get(key)), sha(old));
        assert.deepEqual(await keysUnder(tier, k(`fail/`)), (label === 'small' ? [key] : [k('fail/small'), key]).sort());
      });

      test(`short body (${label}): ShortObject, nothing visible`, async () => {
        const key = k(`short/${label}`);
        const data = randomBytes(size - 1);
        await rejectsWith(tier.put(key, bodyOf(data), size, metaFor(data)), 'ShortObject', true);
        assert.equal(await tier.stat(key), null);
      });
    }

    for (const [label, n] of [['one request', 70_000], ['multipart', opts.partSize + 3]] as const) test(`a wrong expected sha256 is Corrupt and leaves nothing visible (${label})`, async () => {
      const key = k(`corrupt/${n}`);
      const data = randomBytes(n);
      const meta = { ...metaFor(data), sha256: sha(Buffer.from('something else')) };
      await rejectsWith(tier.put(key, bodyOf(data), data.length, meta), 'Corrupt', true);
      assert.equal(await tier.stat(key), null);
      const ok = await tier.put(key, bodyOf(data), data.length, { ...meta, sha256: sha(data) });
      assert.equal(ok.sha256, sha(data));
      assert.equal((await tier.stat(key))?.meta?.sha256, sha(data));
    });

    test('invalid keys are rejected before any I/O', async () => {
      for (const bad of ['../escape', '/abs/olute', 'a//b', 'a/./b', 'x/.tmp-123', 'y.meta.json', '']) {
        await rejectsWith(tier.get(bad), 'InvalidKey', true);
        await rejectsWith(tier.put(bad, bodyOf(Buffer.alloc(1)), 1, metaFor(Buffer.alloc(1))), 'InvalidKey', true);
      }
    });
  });
}
