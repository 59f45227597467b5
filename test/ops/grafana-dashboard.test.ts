// packaging/grafana/tier.json against the metrics the daemon registers: every expression
// names only exported series, every panel has a query, and the areas issue 17 asks for are
// covered. The same check runs against a live daemon's /metrics in report-html-browser.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTierMetrics } from '../../src/metrics/tier-metrics.js';
import { checkDashboard, dashboardExprs, DASHBOARD, exportedNames, metricsIn } from '../helpers/grafana.js';

const exposition = createTierMetrics().registry.render();

test('every dashboard expression names metrics the daemon exports', () => {
  const exprs = dashboardExprs();
  assert.ok(exprs.length >= 15, `${exprs.length} expressions`);
  assert.deepEqual(checkDashboard(exposition), []);
});

test('the check catches a renamed metric and a label value is not taken for a metric', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tier-dash-'));
  try {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, readFileSync(DASHBOARD, 'utf8').replaceAll('(tier_recall_bytes_total{', '(tier_recall_bytes{'));
    assert.match(checkDashboard(exposition, bad).join('\n'), /tier_recall_bytes is not exported/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(metricsIn('sum(tier_files{state="tier_x"})'), ['tier_files']);
  assert.ok(exportedNames(exposition).has('tier_recall_latency_seconds_bucket'));
});

test('the dashboard covers recall latency, bytes fetched, throttle waits, runs and states per tier', () => {
  const used = new Set(dashboardExprs().flatMap((e) => metricsIn(e.expr)));
  for (const m of ['tier_recall_latency_seconds_bucket', 'tier_recall_bytes_total', 'tier_throttle_wait_seconds_total', 'tier_policy_runs_total', 'tier_bytes', 'tier_tier_bytes', 'tier_tier_files']) {
    assert.ok(used.has(m), `dashboard uses ${m}`);
  }
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
  const ids = d.panels.map((p: { id: number }) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of d.panels) if (p.type !== 'row') assert.ok(p.targets?.length, `panel "${p.title}" has a query`);
});
