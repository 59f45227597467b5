// Reads packaging/grafana/tier.json and checks its PromQL against a metrics exposition:
// every metric an expression names must be one the daemon exports (a histogram exports
// NAME_bucket, NAME_sum and NAME_count). Used by the pure test (the registry's text) and
// the end-to-end one (a running daemon's /metrics).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DASHBOARD = join(new URL('../..', import.meta.url).pathname, 'packaging/grafana/tier.json');

export interface DashExpr {
  where: string;
  expr: string;
}

/** Every PromQL expression of the dashboard: panel targets (nested rows too) and template queries. */
export function dashboardExprs(file = DASHBOARD): DashExpr[] {
  const d = JSON.parse(readFileSync(file, 'utf8'));
  const out: DashExpr[] = [];
  const walk = (panels: any[]) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(d.panels);
  for (const v of d.templating?.list ?? []) {
    if (v.type === 'query') out.push({ where: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query });
  }
  return out;
}

/** Series names an exposition offers, from its `# TYPE` lines (present even before a first sample). */
export function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    else names.add(name);
  }
  return names;
}

/** The metric names an expression uses: tier_* identifiers outside quoted strings. */
export function metricsIn(expr: string): string[] {
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...new Set([...bare.matchAll(/\btier_[a-zA-Z0-9_:]*/g)].map((m) => m[0]))];
}

/** Problems: expressions naming no metric, or a metric the exposition does not have. */
export function checkDashboard(exposition: string, file = DASHBOARD): string[] {
  const have = exportedNames(exposition);
  const problems: string[] = [];
  for (const e of dashboardExprs(file)) {
    const used = metricsIn(e.expr);
    if (used.length === 0) problems.push(`${e.where}: names no tier metric: ${e.expr}`);
    for (const m of used) if (!have.has(m)) problems.push(`${e.where}: ${m} is not exported (${e.expr})`);
  }
  return problems;
}
