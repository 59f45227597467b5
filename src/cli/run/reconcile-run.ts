// `tier reconcile [--dry-run] [--hash] [--json] [--config FILE...] [--state-dir DIR]`:
// through the daemon when one runs (its catalog, its marks, serialized with its own
// passes; without --config its own filesets), else here with the policy files' filesets.
// A dry run here opens the catalog read-only: not even a schema migration is written.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openSqlite } from '../../record/sqlite.js';
import { CATALOG_FILE, fromDb, openCatalog, type CatalogRow, type DbRow } from '../../engine/catalog.js';
import { daemonOrNull } from '../engine-cli.js';
import { EXIT, UserError, type Printer } from '../io.js';
import { jsonLogger } from '../../log.js';
import { loadCheckedPolicy } from './load-policy.js';
import { formatReconcile } from '../format/reconcile-format.js';
import { reconcile, type ReconcileCatalog, type ReconcileResult } from '../../reconcile/reconcile.js';

export interface ReconcileCliOptions {
  config?: string[];
  dryRun?: boolean;
  hash?: boolean;
  json?: boolean;
  stateDir: string;
}

export async function runReconcile(opts: ReconcileCliOptions, printer: Printer): Promise<number> {
  const stateDir = resolve(opts.stateDir);
  const files = (opts.config ?? []).map((f) => resolve(f));
  const dryRun = opts.dryRun === true;
  const hash = opts.hash === true;
  // Bad policy files are reported here, with their diagnostics, whoever runs the pass.
  const policies = await Promise.all(files.map((f) => loadCheckedPolicy(f)));
  const client = await daemonOrNull(stateDir);
  let r: ReconcileResult;
  if (client) {
    try {
      r = (await client.reconcile({ ...(files.length ? { policyFiles: files } : {}), dryRun, hash })) as ReconcileResult;
    } catch (e) {
      throw new UserError(`reconcile through the daemon (${client.socket}): ${(e as Error).message}`);
    }
  } else {
    if (files.length === 0) throw new UserError(`tier reconcile: no daemon runs with state dir ${stateDir}: say which filesets with --config POLICYFILE`, EXIT.usage);
    const roots = [...new Set(policies.flatMap((pf) => pf.filesets.flatMap((f) => f.roots)))];
    const file = join(stateDir, CATALOG_FILE);
    const catalog = dryRun ? readOnlyCatalog(file) : openCatalog(file);
    try {
      r = await reconcile({ roots, dryRun, hash }, { catalog, log: jsonLogger((l) => printer.err(l), 'warn') });
    } finally {
      catalog?.close();
    }
  }
  if (opts.json) printer.out(JSON.stringify(r, null, 2));
  else for (const line of formatReconcile(r, hash)) printer.out(line);
  for (const e of r.scanErrors) printer.err(`tier reconcile: ${e.path}: ${e.op}: ${e.error}`);
  if (r.scanErrors.length) printer.err('tier reconcile: the scan was incomplete: no row of an unscanned root was removed');
  return r.scanErrors.length > 0 ? EXIT.failed : EXIT.ok;
}

/** The catalog as a dry run sees it: read-only, no file made, no migration; null when absent. */
function readOnlyCatalog(file: string): (ReconcileCatalog & { close(): void }) | null {
  if (!existsSync(file)) return null;
  const db = openSqlite(file, { readonly: true, fileMustExist: true });
  const hasCtime = (db.prepare('PRAGMA table_info(files)').all() as { name: string }[]).some((c) => c.name === 'ctime_ns');
  const refuse = () => {
    throw new Error('catalog opened read-only (dry run)');
  };
  return {
    get: (dev, ino) => {
      const r = db.prepare('SELECT * FROM files WHERE dev = ? AND ino = ?').get(dev, ino) as DbRow | undefined;
      return r ? fromDb(r) : null;
    },
    ctimeOf: (dev, ino) =>
      hasCtime ? ((db.prepare('SELECT ctime_ns FROM files WHERE dev = ? AND ino = ?').get(dev, ino) as { ctime_ns: string | null } | undefined)?.ctime_ns ?? null) : null,
    all: () => (db.prepare('SELECT * FROM files ORDER BY path').all() as DbRow[]).map((r): CatalogRow => fromDb(r)),
    upsert: refuse,
    remove: refuse,
    markDeleted: refuse,
    setCtime: refuse,
    setHandle: refuse,
    renamePath: refuse,
    close: () => db.close(),
  };
}
