// gc as a policy file asks for it (`tier gc` and the daemon's GcLoop): every tier of the
// file, each object kept for the longest `keep_deleted` of the policies that send data to
// that tier (30 days when none says); the catalog's rows are the references, and rows gc
// finds gone or living on are forgotten or revived after the run (not on --dry-run).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { PolicyFile } from '../dsl/ast.js';
import { Catalog, CATALOG_FILE, type CatalogRow } from '../engine/catalog.js';
import { createTiers } from '../tiers/index.js';
import type { Tier } from '../tiers/tier.js';
import type { Logger } from '../log.js';
import { collectGarbage, DEFAULT_KEEP_DELETED_MS, type GcResult } from './gc.js';

export interface GcCommandOptions {
  config: string;
  stateDir: string;
  dryRun?: boolean;
  json?: boolean;
  now?: number;
  log?: Logger;
}

/** Longest keep_deleted among the policies whose rules archive or release to each tier. */
export function retentionByTier(pf: PolicyFile): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of pf.tiers) out.set(t.name, -1);
  for (const p of pf.policies) {
    if (p.keepDeletedMs === undefined) continue;
    for (const r of p.rules) {
      const a = r.action;
      if ((a.kind === 'archive' || a.kind === 'release') && (out.get(a.tier) ?? -1) < p.keepDeletedMs) out.set(a.tier, p.keepDeletedMs);
    }
  }
  for (const [k, v] of out) if (v < 0) out.set(k, DEFAULT_KEEP_DELETED_MS);
  return out;
}

/** How often the daemon collects: half the shortest retention, between 1 s and a day. */
export function gcIntervalMs(pf: PolicyFile): number {
  const shortest = Math.min(...retentionByTier(pf).values());
  return Math.min(86_400_000, Math.max(1000, Math.floor(shortest / 2)));
}

/** `open`: the daemon's already open tiers (left open); absent: opened here and closed after. */
export async function gcWithPolicy(pf: PolicyFile, opts: GcCommandOptions, open?: Map<string, Tier>): Promise<GcResult> {
  const tiers = open ? new Map(pf.tiers.flatMap((t) => (open.has(t.name) ? [[t.name, open.get(t.name)!] as const] : []))) : createTiers(pf);
  const catFile = join(opts.stateDir, CATALOG_FILE);
  const cat = existsSync(catFile) ? new Catalog(catFile) : null;
  try {
    const rows: CatalogRow[] = cat ? [...cat.all()] : [];
    const result = await collectGarbage({
      tiers,
      keepDeleted: retentionByTier(pf),
      catalogRefs: rows,
      roots: [...new Set(pf.filesets.flatMap((f) => f.roots))],
      stateDir: opts.stateDir,
      now: opts.now ?? Date.now(),
      dryRun: opts.dryRun === true,
      log: opts.log,
    });
    // Leftovers of interrupted puts (a daemon killed mid-upload: local .tmp-* files, S3
    // multipart uploads) belong to no file; each tier removes those past its own age limit,
    // which in-flight puts never reach (test/reliability/kill-migrate.test.ts).
    // Deleted files whose object is gone now need no row any more. Conditional: `rows` is
    // a snapshot from the start of the run, and a file that reused the inode number may
    // have been released since (its row, revived, names another key).
    if (!opts.dryRun && cat) for (const f of result.forget) cat.forgetDeleted(f.dev, f.ino, f.key);
    // Rows of files living on under another name (their handle said so) follow them.
    if (!opts.dryRun && cat) for (const v of result.revive) cat.reviveAt(v.dev, v.ino, v.path, v.tier, v.key);
    if (!opts.dryRun) {
      for (const t of tiers.values()) await t.sweepTemp?.().catch((err: unknown) => opts.log?.warn('gc: sweeping temp leftovers failed', { tier: t.name, op: 'sweep', err }));
    }
    return result;
  } finally {
    cat?.close();
    if (!open) await Promise.allSettled([...tiers.values()].map((t) => t.close()));
  }
}

