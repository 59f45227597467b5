import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplyView } from '../../src/cli/commands/apply-view.js';
import type { ActionEvent, ApplyResult } from '../../src/engine/apply.js';

const span = { file: '/p.hsmpolicy', line: 5, col: 3, length: 4 };
const action = (path: string, status: ActionEvent['status'], message?: string): ActionEvent => ({
  type: 'action',
  policy: 'p',
  path,
  absPath: '/d/' + path,
  size: 1 << 20,
  ageMs: 3 * 86_400_000,
  rule: 'old',
  span,
  action: 'release',
  tier: 'nas',
  status,
  uploaded: 0,
  freed: 0,
  ...(message ? { message } : {}),
});
const result: ApplyResult = {
  dryRun: false,
  policies: [{ policy: 'p', scanned: 5, planned: 2, skipped: { unmatched: 3, keep: 0, noop: 0, pinned: 0, limit: 0, watermark: 0, nodata: 0 }, held: 0, watermarks: [] }],
  actions: { release: { files: 1, bytes: 1 << 20 } },
  status: { planned: 0, done: 1, skipped: 0, busy: 0, failed: 1 },
  uploaded: 1 << 20,
  freed: 1 << 20,
  failures: [{ path: '/d/b', action: 'release', message: 'release /d/b: tier nas: put "k": Unavailable' }],
  scanErrors: 0,
};

function printer(isTTY: boolean) {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, p: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), isTTY } };
}

test('on a TTY: a progress bar instead of per-file lines, failures still printed, then the summary', () => {
  const { out, err, p } = printer(true);
  const bar: string[] = [];
  const v = new ApplyView(p, false, false, (s) => bar.push(s));
  v.event({ type: 'planned', policy: 'p', scanned: 5, actions: 2, bytes: 2 << 20, skipped: result.policies[0]!.skipped, watermarks: [] });
  v.event(action('a', 'done'));
  v.event(action('b', 'failed', 'release /d/b: tier nas: put "k": Unavailable'));
  v.finish(result);
  assert.match(bar[0]!, /^\r\x1b\[K1\/2 files {2}1\.0 MiB\/2\.0 MiB {2}.*\/s {2}ETA /);
  assert.ok(bar.some((b) => b.includes('2/2 files')));
  assert.ok(!out.some((l) => l.endsWith(' a')), 'no per-file line for a success on a TTY');
  assert.match(err[0]!, /^failed\s+release\s+nas\s+1\.0 MiB\s+3d\s+rule old \(\/p\.hsmpolicy:5:3\)\s+b {2}\(release \/d\/b: tier nas: put "k": Unavailable\)$/);
  assert.deepEqual(out, [
    'policy p: 5 files scanned, 2 actions (no action: 3 unmatched)',
    'release: 1 file, 1.0 MiB',
    'done 1, skipped 0, busy 0, failed 1; uploaded 1.0 MiB, freed 1.0 MiB',
  ]);
  assert.deepEqual(err.slice(1), ['tier apply: 1 action failed:', '  release /d/b: tier nas: put "k": Unavailable']);
});

test('not on a TTY: quiet per-file lines, no bar; odd names are quoted', () => {
  const { out, p } = printer(false);
  const bar: string[] = [];
  const v = new ApplyView(p, false, false, (s) => bar.push(s));
  v.event(action('new\nline', 'done'));
  assert.deepEqual(bar, []);
  assert.match(out[0]!, /^done\s+release\s+nas.*"new\\nline"$/);
});
