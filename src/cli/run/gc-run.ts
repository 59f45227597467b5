// `tier gc [--dry-run] --config POLICYFILE [--state-dir DIR] [--json]`: collects orphan
// objects on every tier of the policy file (src/gc/gc-policy.ts) and prints what became of each.
import type { Printer } from '../io.js';
import { EXIT } from '../io.js';
import { gcWithPolicy, type GcCommandOptions } from '../../gc/gc-policy.js';
import { humanAge, humanSize } from '../format/explain-format.js';
import { loadCheckedPolicy } from './load-policy.js';

export type { GcCommandOptions };

export async function runGc(opts: GcCommandOptions, printer: Printer): Promise<number> {
  const pf = await loadCheckedPolicy(opts.config);
  const r = await gcWithPolicy(pf, opts);
  const now = opts.now ?? Date.now();
  if (opts.json) printer.out(JSON.stringify(r, null, 2));
  else {
    for (const e of r.scanErrors) printer.err(`tier gc: ${e.path}: ${e.op}: ${e.error}`);
    if (r.scanErrors.length) printer.err('tier gc: the scan was incomplete, so nothing was deleted');
    for (const t of r.tiers) {
      if (t.error) printer.err(`tier gc: tier ${t.tier}: ${t.error}`);
      printer.out(`tier ${t.tier}: ${t.listed} objects, ${t.referenced} referenced, ${t.orphans.length} orphaned, ${t.foreign} not made by tier (left alone)`);
      for (const o of t.orphans) printer.out(`  ${o.fate.padEnd(21)} ${o.key}  ${humanSize(o.size)}  orphaned for ${humanAge(now - o.firstSeen)}${o.error ? `: ${o.error}` : ''}`);
    }
    printer.out(`${opts.dryRun ? 'dry run: nothing deleted' : `deleted ${r.deleted} objects, ${humanSize(r.deletedBytes)}`}`);
  }
  const failed = r.scanErrors.length > 0 || r.tiers.some((t) => t.error || t.orphans.some((o) => o.fate === 'delete failed'));
  return failed ? EXIT.failed : EXIT.ok;
}
