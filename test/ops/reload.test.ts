import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkReload } from '../../src/ops/reload.js';
import { parsePolicyFiles } from '../../src/daemon/policies.js';
import type { TierDecl } from '../../src/dsl/ast.js';

const dir = mkdtempSync(join(tmpdir(), 'tier-reload-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'p.hsmpolicy');
const V1 = `tier t { local "/t" }\nfileset f { root "/d" }\npolicy p on f {\n  schedule "0 * * * *"\n  rule r: size > 1MiB -> release to t\n}\n`;

function load(text: string) {
  writeFileSync(file, text);
  const r = parsePolicyFiles([file]);
  assert.ok(r.ok);
  const served = new Map<string, TierDecl>(r.policies.flatMap((pf) => pf.tiers.map((t) => [t.name, t] as const)));
  return { policies: r.policies, served };
}

describe('SIGHUP reload check', () => {
  test('a valid edit is accepted and names the changed policy; moving lines is no change', () => {
    const cur = load(V1);
    writeFileSync(file, V1.replace('1MiB', '2MiB'));
    const r = checkReload([file], cur.served, cur.policies);
    assert.ok(r.ok);
    assert.deepEqual(r.changed, ['p']);
    writeFileSync(file, '\n\n' + V1);
    const same = checkReload([file], cur.served, cur.policies);
    assert.ok(same.ok);
    assert.deepEqual(same.changed, []);
  });

  test('a broken file is rejected with file:line:col and the old policies stay', () => {
    const cur = load(V1);
    writeFileSync(file, V1.replace('release to t', 'release to nowhere'));
    const r = checkReload([file], cur.served, cur.policies);
    assert.equal(r.ok, false);
    assert.match((r as { message: string }).message, /running policies stay/);
    assert.match((r as { message: string }).message, /p\.hsmpolicy:5:\d+: error/);
  });

  test('a new or changed tier needs a restart', () => {
    const cur = load(V1);
    writeFileSync(file, V1.replace('"/t"', '"/elsewhere"'));
    assert.match((checkReload([file], cur.served, cur.policies) as { message: string }).message, /tier "t" changed; restart/);
    writeFileSync(file, V1 + 'tier u { local "/u" }\n');
    assert.match((checkReload([file], cur.served, cur.policies) as { message: string }).message, /tier "u" is new; restart/);
  });
});

describe('DaemonOps.reloadFiles', () => {
  test('a valid edit reschedules; a broken one is logged and the old schedule keeps running', async () => {
    const { DaemonOps } = await import('../../src/ops/daemon-ops.js');
    const { FakeClock } = await import('./fake-clock.js');
    const cur = load(V1.replace('"0 * * * *"', '"* * * * *"'));
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:30Z'));
    const runs: string[] = [];
    const errors: string[] = [];
    const log = { debug() {}, info() {}, warn() {}, error: (m: string) => void errors.push(m) };
    const ops = new DaemonOps({ stateDir: join(dir, 'state'), policies: cur.policies, log, clock, runPolicy: async (_f, p) => void runs.push(p) });
    try {
      await ops.start();
      await clock.advance(30_000);
      assert.equal(runs.length, 1, 'every minute');
      writeFileSync(file, V1.replace('"0 * * * *"', '"* * * * *"').replace('release to t', 'release to nowhere'));
      const bad = ops.reloadFiles([file], cur.served, cur.policies);
      assert.equal(bad.ok, false);
      assert.ok(errors.some((e) => /reload rejected/.test(e)));
      await clock.advance(60_000);
      assert.equal(runs.length, 2, 'the old schedule still runs');
      writeFileSync(file, V1.replace('"0 * * * *"', '"0 0 1 1 *"')); // once a year
      assert.equal(ops.reloadFiles([file], cur.served, cur.policies).ok, true);
      await clock.advance(10 * 60_000);
      assert.equal(runs.length, 2, 'the new schedule is in force');
    } finally {
      await ops.stop();
    }
  });
});
