// The README demo (`npm run demo` = scripts/demo.sh) end to end, twice (it must clean up
// after a previous run): old files released through the daemon, a few bytes of a released
// file fetch only the touched chunk, the whole file reads back byte-exact, and nothing is
// left mounted or running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { REPO } from './daemon/harness.js';

const MiB = 1024 * 1024;

function runDemo(): { code: number | null; out: string } {
  const r = spawnSync('bash', ['scripts/demo.sh'], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, TIER_DEMO_FROM_SOURCE: '1' },
    maxBuffer: 64 * MiB,
  });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir);
}

for (const run of [1, 2]) {
  test(`demo run ${run}: releases, partial read fetches one chunk, byte-exact, cleans up`, () => {
    const { code, out } = runDemo();
    assert.equal(code, 0, out);
    assert.match(out, /daemon ready \(pid \d+/);

    // The big file was released: no block left (the record lives in the 512-byte inode).
    const released = /holiday-2019\.mkv: (\d+) bytes, (\d+) blocks of 512 allocated/.exec(out);
    assert.ok(released, out);
    assert.equal(Number(released[1]), 48 * MiB);
    assert.equal(Number(released[2]), 0, `released: ${released[2]} blocks`);

    // head -c 64 brought back the first chunk (1 MiB) and not much more.
    const partial = /holiday-2019\.mkv: now (\d+) blocks of 512 allocated = \d+ KiB of 49152 KiB fetched/.exec(out);
    assert.ok(partial, out);
    const bytes = Number(partial[1]) * 512;
    assert.ok(bytes >= MiB && bytes <= 2 * MiB, `after head -c 64: ${bytes} bytes allocated`);

    assert.match(out, /byte-exact: [0-9a-f]{16}\.\.\. = [0-9a-f]{16}\.\.\./);
    // The demo says where its report page is, and the page holds the recall it made.
    assert.match(out, /report page written to \/var\/lib\/tier-demo\/report\.html/);
    const page = readFileSync('/var/lib/tier-demo/report.html', 'utf8');
    assert.match(page, /data-figure="recalls" data-recalls="[1-9]/);
    assert.match(page, /<g class="bar" data-label="released" data-files="[1-9]/);
    assert.doesNotMatch(out, /MISMATCH/);
    assert.equal(isMounted('/mnt/tier-demo'), false, 'unmounted at the end');
    const pidFile = '/var/lib/tier-demo/daemon.pid';
    assert.equal(existsSync(pidFile), false, 'daemon stopped');
  });
}
