// `tier apply POLICYFILE [--policy NAME] [--dry-run] [--json] [--state-dir DIR]`: run the
// policies once. When a daemon answers on STATE_DIR/control.sock it runs the apply (it
// holds the recall marks); otherwise it runs here, where releases are refused per file.
import { join, resolve } from 'node:path';
import type { RegisterCommand } from './types.js';
import { EXIT, UserError, type Printer } from '../io.js';
import { DEFAULT_STATE_DIR } from '../../daemon/protocol.js';
import { runApply, selectPolicies, type ApplyResult, type ProgressEvent } from '../../engine/apply.js';
import { jsonLogger } from '../../log.js';
import type { Tier } from '../../tiers/tier.js';
import { daemonOrNull, loadPolicyForRun } from '../engine-cli.js';
import { ApplyView } from './apply-view.js';

export interface ApplyCliOptions {
  policy?: string;
  dryRun?: boolean;
  json?: boolean;
  stateDir: string;
}

export const register: RegisterCommand = (program, printer, setExitCode) => {
  program
    .command('apply')
    .description('run the policies of a policy file once (through the daemon when one runs)')
    .argument('<policyfile>', 'the .hsmpolicy file')
    .option('--policy <name>', 'run only this policy')
    .option('--dry-run', 'print what would be done, change nothing')
    .option('--json', 'print progress and the summary as JSON lines')
    .option('--state-dir <dir>', 'catalog and control socket', DEFAULT_STATE_DIR)
    .action(async (file: string, opts: ApplyCliOptions) => setExitCode(await runApplyCli(file, opts, printer)));
};

export async function runApplyCli(file: string, opts: ApplyCliOptions, printer: Printer): Promise<number> {
  const pf = await loadPolicyForRun(file, printer);
  try {
    selectPolicies(pf, opts.policy);
  } catch (e) {
    throw new UserError((e as Error).message, EXIT.usage);
  }
  const view = new ApplyView(printer, Boolean(opts.json), Boolean(opts.dryRun));
  const onEvent = (e: unknown) => view.event(e as ProgressEvent);
  const stateDir = resolve(opts.stateDir);
  const client = await daemonOrNull(stateDir);
  let result: ApplyResult;
  if (client) {
    const req = { policyFile: resolve(file), dryRun: Boolean(opts.dryRun), now: Date.now(), ...(opts.policy ? { policy: opts.policy } : {}) };
    try {
      result = (await client.apply(req, onEvent)) as ApplyResult;
    } catch (e) {
      throw new UserError(`apply through the daemon (${client.socket}): ${(e as Error).message}`);
    }
  } else {
    // A dry run plans only: no tier, no catalog, and not their modules (the S3 SDK and SQLite
    // cost a big tree's dry run more than its planning).
    const tiers: Map<string, Tier> = opts.dryRun ? new Map() : (await import('../../tiers/index.js')).createTiers(pf);
    const catalog = opts.dryRun ? null : (await import('../../engine/catalog.js')).openCatalog(join(stateDir, 'catalog.db'));
    const log = jsonLogger((l) => printer.err(l), 'warn');
    try {
      result = await runApply(
        { policyFile: pf, dryRun: Boolean(opts.dryRun), now: Date.now(), ...(opts.policy ? { policyName: opts.policy } : {}) },
        { tiers, catalog, marker: null, log },
        onEvent,
      );
    } finally {
      catalog?.close();
      await Promise.all([...tiers.values()].map((t) => t.close().catch(() => {})));
    }
  }
  view.finish(result);
  return result.status.failed > 0 ? EXIT.failed : EXIT.ok;
}
