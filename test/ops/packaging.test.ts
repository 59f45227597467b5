import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const unit = readFileSync('packaging/tier.service', 'utf8');
const directive = (name: string) => unit.split('\n').filter((l) => l.startsWith(`${name}=`)).map((l) => l.slice(name.length + 1));

describe('packaging', () => {
  test('tier.service: simple, always restarted, ready only after marks, ordered before consumers, reload by takeover', () => {
    assert.deepEqual(directive('Type'), ['simple']);
    assert.deepEqual(directive('Restart'), ['always']);
    assert.match(directive('ExecStart')[0]!, /exec \/usr\/local\/bin\/tier daemon .*\/etc\/tier\/policies\/\*\.hsmpolicy'$/);
    assert.match(directive('ExecStartPost')[0]!, /tier wait-ready/);
    assert.match(directive('Before')[0]!, /nfs-server\.service/);
    const reload = directive('ExecReload');
    assert.match(reload[0]!, /tier check \/etc\/tier\/policies\/\*\.hsmpolicy'$/, 'a policy with errors fails the reload first');
    assert.match(reload[1]!, /exec \/usr\/local\/bin\/tier daemon --takeover --detach .*\/etc\/tier\/policies\/\*\.hsmpolicy'$/, 'reload = a takeover, no gap');
    assert.equal(reload.length, 2);
    assert.deepEqual(directive('NotifyAccess'), ['all'], 'the new daemon sends MAINPID=');
    assert.match(unit, /reads ZEROS/);
    assert.match(unit, /backing "\/srv\/\.tier\/projects"/, 'the unit shows the backing layout');
    assert.match(directive('ExecStopPost')[0]!, /exec \/usr\/local\/bin\/tier unbind --state-dir "\$TIER_STATE_DIR" \/etc\/tier\/policies\/\*\.hsmpolicy'$/);
  });

  test('systemd-analyze verify accepts the units', (t) => {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze']);
    if (which.status !== 0) return t.skip('systemd-analyze not installed');
    const dir = mkdtempSync(join(tmpdir(), 'tier-units-'));
    try {
      for (const f of ['tier.service']) cpSync(join('packaging', f), join(dir, f));
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', 'tier.service'], { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /Unknown key|Invalid|Failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the sample /etc/tier policy passes tier check', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'check', 'packaging/etc-tier/policies/site.hsmpolicy'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ok \(2 tiers, 1 fileset, 2 policies\)/);
  });
});
