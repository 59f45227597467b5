// SIGHUP: re-read the policy files. Invalid files are rejected with their diagnostics and
// the old policies keep running. New tiers are added to the live registry (the recall
// service shares the Map); a tier whose storage changed under the same name is refused,
// since released files name their tier in their records: that needs a restart. Rate
// limits (bwlimit, tpslimit) of open tiers take the new values at once. Fileset backings
// cannot change either: start-up marking went through the ones bound now.
import type { Logger } from '../log.js';
import type { TierDecl } from '../dsl/ast.js';
import type { WorkerState } from './handlers.js';
import { parsePolicyFiles, sameTier } from '../daemon/policies.js';
import { backingsOf, sameBackings } from '../daemon/backing.js';

export function reloadPolicies(s: WorkerState, log: Logger): boolean {
  const parsed = parsePolicyFiles(s.cfg.policyFiles);
  if (!parsed.ok) {
    log.error('reload rejected, the previous policies keep running', { op: 'reload', diagnostics: parsed.message });
    return false;
  }
  const gate = backingsOf(parsed.policies);
  if (gate.problems.length > 0 || !sameBackings(gate.backings, s.cfg.backings)) {
    log.error('reload rejected, the previous policies keep running', {
      op: 'reload',
      reason: gate.problems.join('; ') || 'a fileset backing was added, removed or changed; restart the daemon to change backings (its files are marked at start)',
    });
    return false;
  }
  const current = new Map<string, TierDecl>();
  for (const pf of s.policies) for (const t of pf.tiers) current.set(t.name, t);
  const added: TierDecl[] = [];
  for (const pf of parsed.policies)
    for (const t of pf.tiers) {
      const old = current.get(t.name);
      if (old && !sameTier(old, t)) {
        log.error('reload rejected, the previous policies keep running', {
          op: 'reload',
          tier: t.name,
          reason: `${t.span.file}:${t.span.line}:${t.span.col}: tier "${t.name}" now names other storage; restart the daemon to change it`,
        });
        return false;
      }
      if (!old && !added.some((a) => a.name === t.name)) added.push(t);
    }
  for (const t of added) s.views.add(t);
  s.views.retune(parsed.policies.flatMap((pf) => pf.tiers));
  s.policies = parsed.policies;
  s.ops.reload(parsed.policies);
  log.info('policies reloaded', { op: 'reload', files: s.cfg.policyFiles, newTiers: added.map((t) => t.name) });
  return true;
}
