// POST /import inside the worker: the policy must be one this daemon serves (its tiers are
// the recall service's), the tier one of its tiers, DIR inside one of its filesets; then
// src/import/run.ts with the daemon's catalog and the recall service's marks.
import { DEFAULT_TUNING } from '../dsl/ast.js';
import { runImport, type ImportEvent, type ImportSummary } from '../import/run.js';
import { RequestError } from './control-server.js';
import type { PolicyFile } from '../dsl/ast.js';
import type { Catalog } from '../engine/catalog.js';
import type { Logger } from '../log.js';
import type { RecallService } from '../recall/service.js';
import type { Tier } from '../tiers/tier.js';
import type { ImportRequest } from '../daemon/protocol.js';

/** What of the worker's state an import uses (handlers.ts WorkerState has it). */
export interface ImportState {
  tiers: Map<string, Tier>;
  catalog: Catalog;
  recall: Pick<RecallService, 'markReleased'>;
  log: Logger;
}

/** `pf`: the request's policy file, already checked against the daemon's tiers (handlers.ts loadForRequest). */
export async function runImportRequest(s: ImportState, pf: PolicyFile, req: ImportRequest, progress: (e: unknown) => void, signal: AbortSignal): Promise<ImportSummary> {
  const decl = pf.tiers.find((t) => t.name === req.tier);
  if (!decl) throw new RequestError(`${pf.file}: no tier named "${req.tier}" (tiers: ${pf.tiers.map((t) => t.name).join(', ') || 'none'})`);
  const tier = s.tiers.get(req.tier);
  if (!tier) throw new RequestError(`tier "${req.tier}" is not served by this daemon`, 409);
  const roots = pf.filesets.flatMap((f) => f.roots);
  try {
    return await runImport(
      {
        tierName: req.tier,
        tier,
        dir: req.dir,
        roots,
        ...(req.prefix ? { prefix: req.prefix } : {}),
        dryRun: req.dryRun,
        deleteVanished: req.delete,
        ownership: { uid: req.uid, gid: req.gid, filePerms: req.filePerms, dirPerms: req.dirPerms },
        chunk: (decl.tuning ?? DEFAULT_TUNING).chunk,
        now: Date.now(),
      },
      { catalog: s.catalog, markReleased: (fd) => s.recall.markReleased(fd), log: s.log },
      (e: ImportEvent) => progress(e),
      signal,
    );
  } catch (e) {
    if (e instanceof Error && /^import directory /.test(e.message)) throw new RequestError(e.message);
    throw e;
  }
}
