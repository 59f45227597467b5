// The cloud-gateway demo (scripts/demo-import.sh) end to end: a large tar on nginx is
// imported as a released file; `tar tvf | head` transfers part of it, counted in nginx's
// access log. At the defaults tar reading its own archive gets ranges (not the whole file)
// and each header it reads costs one 64 KiB chunk: about what tar reads, the article's
// "only the first 1MB" (measured: 448 KiB of a 128 MiB archive).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { REPO } from './helpers/daemon.js';

test('demo-import: tar tvf | head over http fetches part of the archive; everything stopped after', () => {
  const r = spawnSync('bash', ['scripts/demo-import.sh'], { cwd: REPO, encoding: 'utf8', env: { ...process.env, TIER_DEMO_FROM_SOURCE: '1' }, maxBuffer: 64 << 20 });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, out);
  const runs = [...out.matchAll(/^(.*): server sent (\d+) bytes of big\.tar \((\d+) bytes\); (\d+) bytes now local$/gm)];
  assert.equal(runs.length, 2, out);
  const [def, noTar] = runs.map((m) => ({ sent: Number(m[2]), size: Number(m[3]) }));
  assert.match(out, /release\/part-\d\.bin/);
  // Default settings: at most 1 MiB of the 128 MiB archive (a whole-file recall sends all of it).
  assert.ok(def!.sent > 0 && def!.sent <= 1 << 20, `default: ${def!.sent} of ${def!.size}`);
  // A whole_file_for without tar: the same ranges.
  assert.ok(noTar!.sent > 0 && noTar!.sent <= 1 << 20, `no tar: ${noTar!.sent} of ${noTar!.size}`);
  assert.equal(readFileSync('/proc/self/mounts', 'utf8').includes(' /mnt/tier-demo-import '), false, 'unmounted');
  assert.equal(existsSync('/var/lib/tier-demo-import/daemon.pid'), false, 'daemon stopped');
  assert.equal(existsSync('/var/lib/tier-demo-import/nginx/nginx.pid'), false, 'nginx stopped');
});
