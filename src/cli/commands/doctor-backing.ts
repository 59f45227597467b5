// `tier doctor` check "backing": a fileset that holds released files and has no `backing`
// lets readers see zeros whenever the daemon is not serving (boot, stop, crash); one with a
// backing whose layout is wrong would be refused by the daemon. The filesets come from
// --config files, else from the running daemon; released files from the catalog (read-only).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openSqlite } from '../../record/sqlite.js';
import type { PolicyFile } from '../../dsl/ast.js';
import { backingsOf, isBound, layoutProblem } from '../../daemon/backing.js';
import { parsePolicyFiles } from '../../daemon/policies.js';

export interface BackingCheck {
  name: 'backing';
  ok: boolean;
  /** A warning, not a failure: tier works, but readers may see zeros outside the daemon's life. */
  warn?: boolean;
  detail: string;
}

export function checkBackings(policyFiles: string[], stateDir: string): BackingCheck {
  if (policyFiles.length === 0) return { name: 'backing', ok: true, detail: 'no policy files (give --config FILE, or run the daemon) : not checked' };
  const parsed = parsePolicyFiles(policyFiles);
  if (!parsed.ok) return { name: 'backing', ok: false, detail: parsed.message };
  const problems: string[] = [];
  for (const f of unbacked(parsed.policies)) {
    const n = releasedUnder(join(stateDir, 'catalog.db'), f.roots);
    if (n > 0)
      problems.push(`fileset '${f.name}' holds ${n} released file${n === 1 ? '' : 's'} and has no backing: while no daemon serves them (boot, stop, crash) they read as zeros`);
  }
  for (const b of backingsOf(parsed.policies).backings) {
    const why = isBound(b) ? null : layoutProblem(b);
    if (why) problems.push(`fileset '${b.fileset}': ${why}`);
  }
  if (problems.length === 0) return { name: 'backing', ok: true, detail: 'every fileset holding released files has a backing' };
  return { name: 'backing', ok: false, warn: true, detail: problems.join('; ') };
}

function unbacked(policies: PolicyFile[]) {
  return policies.flatMap((pf) => pf.filesets.filter((f) => !f.backing));
}

/** Catalog rows of released/partial files under `roots`. */
function releasedUnder(file: string, roots: string[]): number {
  if (!existsSync(file)) return 0;
  const db = openSqlite(file, { readonly: true, fileMustExist: true });
  try {
    const q = db.prepare(
      "SELECT count(*) AS n FROM files WHERE state IN ('released', 'partial') AND deleted_at IS NULL AND substr(path, 1, length(@p)) = @p",
    );
    return roots.reduce((n, r) => n + (q.get({ p: r === '/' ? r : `${r}/` }) as { n: number }).n, 0);
  } catch {
    return 0; // a catalog from before these columns: nothing to say
  } finally {
    db.close();
  }
}
