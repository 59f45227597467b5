// SIGHUP: re-read the daemon's policy files. A file with errors is rejected with its
// diagnostics and the policies already running stay in force. Tiers cannot change under
// a running recall service (a file released to a tier it does not know could never be
// read back), so a new or redefined tier also rejects the reload: that needs a restart.
import type { PolicyFile, TierDecl } from '../dsl/ast.js';
import { parsePolicyFiles, sameTier } from '../daemon/policies.js';

export type ReloadResult = { ok: true; policies: PolicyFile[]; changed: string[] } | { ok: false; message: string };

export function checkReload(files: string[], served: Map<string, TierDecl>, current: PolicyFile[]): ReloadResult {
  const parsed = parsePolicyFiles(files);
  if (!parsed.ok) return { ok: false, message: `reload rejected, the running policies stay: ${parsed.message}` };
  const problems: string[] = [];
  for (const pf of parsed.policies)
    for (const t of pf.tiers) {
      const old = served.get(t.name);
      if (!old) problems.push(`${t.span.file}:${t.span.line}:${t.span.col}: tier "${t.name}" is new; restart the daemon to serve it`);
      else if (!sameTier(old, t)) problems.push(`${t.span.file}:${t.span.line}:${t.span.col}: tier "${t.name}" changed; restart the daemon to use it`);
    }
  if (problems.length) return { ok: false, message: `reload rejected, the running policies stay:\n${problems.join('\n')}` };
  const before = new Map(current.flatMap((pf) => pf.policies.map((p) => [`${pf.file}:${p.name}`, JSON.stringify(strip(p))] as const)));
  const changed: string[] = [];
  for (const pf of parsed.policies)
    for (const p of pf.policies) if (before.get(`${pf.file}:${p.name}`) !== JSON.stringify(strip(p))) changed.push(p.name);
  return { ok: true, policies: parsed.policies, changed };
}

/** A policy without source positions: moving a line is not a change. */
function strip(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(strip);
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'span' && !k.endsWith('Span')).map(([k, x]) => [k, strip(x)]));
  return v;
}
