// `tier archive|release|recall|pin|unpin PATH... [--config POLICYFILE] [--tier NAME]
// [--state-dir DIR]`: the engine's actions by hand. release and recall need the recall
// service, so they go to the daemon (and are refused per file when none runs); archive,
// pin and unpin run here.
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { RegisterCommand } from './types.js';
import { EXIT, UserError, type Printer } from '../io.js';
import { DEFAULT_STATE_DIR } from '../../daemon/protocol.js';
import { createTiers } from '../../tiers/index.js';
import { openCatalog, type Catalog } from '../../engine/catalog.js';
import { migrate, NO_RECALL_SERVICE, type Outcome } from '../../engine/execute.js';
import { setPinned } from '../../engine/actions.js';
import { silentLogger } from '../../log.js';
import { daemonOrNull, loadPolicyForRun, pickTier, showPath } from '../engine-cli.js';

type Op = 'archive' | 'release' | 'recall' | 'pin' | 'unpin';

interface ManualOptions {
  config?: string;
  tier?: string;
  stateDir: string;
}

const WHAT: Record<Op, string> = {
  archive: 'copy files to a tier, keeping the local data',
  release: 'copy files to a tier if needed, then free their local blocks (needs the daemon)',
  recall: 'bring released files back whole (needs the daemon)',
  pin: 'keep files resident: policies never release them',
  unpin: 'clear the pin',
};

export const register: RegisterCommand = (program: Command, printer, setExitCode) => {
  for (const op of Object.keys(WHAT) as Op[]) {
    program
      .command(op)
      .description(WHAT[op])
      .argument('<paths...>', 'files')
      .option('--config <policyfile>', 'policy file declaring the tiers (archive, release) and filesets (paths outside them are refused)')
      .option('--tier <name>', 'tier to use (default: the policy file’s only tier)')
      .option('--state-dir <dir>', 'catalog and control socket', DEFAULT_STATE_DIR)
      .action(async (paths: string[], opts: ManualOptions) => setExitCode(await runManual(op, paths, opts, printer)));
  }
};

export async function runManual(op: Op, paths: string[], opts: ManualOptions, printer: Printer): Promise<number> {
  const abs = paths.map((p) => resolve(p));
  const stateDir = resolve(opts.stateDir);
  let tier: string | undefined;
  let pf;
  if (op === 'archive' || op === 'release') {
    if (!opts.config) throw new UserError(`tier ${op}: --config POLICYFILE is required (it declares the tiers)`, EXIT.usage);
    pf = await loadPolicyForRun(opts.config, printer);
    tier = pickTier(pf, opts.tier);
  } else if (opts.config) pf = await loadPolicyForRun(opts.config, printer);
  // With a policy file, paths outside its filesets are refused; without one (pin, unpin),
  // paths are still resolved with no symlink in any component (kernel/beneath.ts).
  const roots = pf ? [...new Set(pf.filesets.flatMap((f) => f.roots))] : undefined;
  let failed = 0;
  const show = (path: string, out: Outcome) => {
    if (out.status === 'failed') failed++;
    const msg = out.message ? `  (${out.message})` : '';
    (out.status === 'failed' ? printer.err : printer.out)(`${out.status.padEnd(7)} ${op} ${showPath(path)}${msg}`);
  };

  if (op === 'release' || op === 'recall') {
    const client = await daemonOrNull(stateDir);
    if (!client) {
      for (const p of abs) show(p, { status: 'failed', uploaded: 0, freed: 0, message: `${op} ${p}: ${NO_RECALL_SERVICE}` });
      return EXIT.failed;
    }
    try {
      await client.manual(op, { paths: abs, ...(tier ? { tier } : {}) }, (ev) => {
        const e = ev as Outcome & { path: string };
        show(e.path, e);
      });
    } catch (e) {
      throw new UserError(`${op} through the daemon (${client.socket}): ${(e as Error).message}`);
    }
    return failed > 0 ? EXIT.failed : EXIT.ok;
  }

  let catalog: Catalog | null = null;
  try {
    catalog = openCatalog(join(stateDir, 'catalog.db'));
  } catch (e) {
    printer.err(`tier ${op}: catalog in ${stateDir} not updated: ${(e as Error).message}`);
  }
  const tiers = pf ? createTiers(pf) : new Map();
  try {
    for (const p of abs) {
      const out = op === 'archive' ? await migrate(p, tier!, 'archive', { ...(roots ? { roots } : {}), tiers, catalog, marker: null, log: silentLogger }) : await setPinned(p, op === 'pin', { catalog, ...(roots ? { roots } : {}) });
      show(p, out);
    }
  } finally {
    catalog?.close();
    await Promise.all([...tiers.values()].map((t) => t.close().catch(() => {})));
  }
  return failed > 0 ? EXIT.failed : EXIT.ok;
}
