// src/record/sqlite.ts keeps every better-sqlite3 connection and statement referenced: under
// Node 24, V8 collecting one aborted the process (`Assertion failed: (env) != nullptr` in
// RemoveEnvironmentCleanupHook). A child process opens and closes catalogs and connections
// many times, drops them, churns the heap and must exit 0. Under Node 24 the same churn with
// better-sqlite3 used directly aborts (asserted, so the test shows what it guards; on Node 20
// that variant exits 0 too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHILD = new URL('./sqlite-held-child.ts', import.meta.url).pathname;
const major = Number(process.versions.node.split('.')[0]);

function run(mode: string): { status: number | null; signal: string | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tier-sqlite-held-'));
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, dir, mode], { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, signal: r.signal, out: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('connections and statements opened through openSqlite survive garbage collection on this Node', () => {
  const r = run('held');
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /^ok$/m);
});

test('better-sqlite3 used directly: aborts under Node 24 when V8 collects a statement (what openSqlite avoids)', (t) => {
  const r = run('raw');
  if (major < 24) {
    assert.equal(r.status, 0, r.out);
    return;
  }
  if (r.status === 0) t.diagnostic(`Node ${process.version} no longer aborts: src/record/sqlite.ts may be unnecessary`);
  else assert.match(r.out, /RemoveEnvironmentCleanupHook/);
});
