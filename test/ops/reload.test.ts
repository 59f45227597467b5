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
