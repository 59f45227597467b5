// `tier import TIER DIR --config POLICY [--prefix P] [--delete] [--dry-run] [--json]
// [--uid U] [--gid G] [--file-perms 0644] [--dir-perms 0755] [--state-dir D]`: every object of TIER (under its prefix + P) appears under DIR as a
// released file (src/import). Runs through the daemon, which marks the files; refused
// without one, like releases. The policy must be the daemon's (its tiers and filesets).
import { resolve } from 'node:path';
import type { RegisterCommand } from './types.js';
import { EXIT, UserError, type Printer } from '../io.js';
import { DEFAULT_STATE_DIR } from '../../daemon/protocol.js';
import type { ImportEvent, ImportSummary } from '../../import/run.js';
import { daemonOrNull, loadPolicyForRun, pickTier } from '../engine-cli.js';
import { ImportView } from './import-view.js';
import { parseId, parsePerms, type OwnershipRequest } from '../../import/ownership.js';
import { gidOf, uidOf } from '../../walk/users.js';

export interface ImportCliOptions {
  config: string;
  prefix?: string;
  delete?: boolean;
  dryRun?: boolean;
  json?: boolean;
  uid?: string;
  gid?: string;
  filePerms?: string;
  dirPerms?: string;
  stateDir: string;
}

/** The ownership options (names looked up here, numbers sent to the daemon). */
export function ownershipOf(opts: ImportCliOptions): OwnershipRequest {
  try {
    return {
      ...(opts.uid !== undefined ? { uid: parseId(opts.uid, '--uid', uidOf) } : {}),
      ...(opts.gid !== undefined ? { gid: parseId(opts.gid, '--gid', gidOf) } : {}),
      ...(opts.filePerms !== undefined ? { filePerms: parsePerms(opts.filePerms, '--file-perms') } : {}),
      ...(opts.dirPerms !== undefined ? { dirPerms: parsePerms(opts.dirPerms, '--dir-perms') } : {}),
    };
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

export const register: RegisterCommand = (program, printer, setExitCode) => {
  program
    .command('import')
    .description('make the objects a tier already holds appear under DIR as released files (through the daemon)')
    .argument('<tier>', 'the tier (declared in the policy file) whose objects to import')
    .argument('<dir>', 'where the files appear: a directory inside a fileset of the policy')
    .requiredOption('--config <policyfile>', 'the policy file the daemon serves')
    .option('--prefix <prefix>', 'only keys under this prefix (below the tier\'s own); it is not part of the file names')
    .option('--delete', 'remove untouched imported files whose object is gone')
    .option('--dry-run', 'report what would be created, refreshed or removed; change nothing')
    .option('--json', 'print items and the summary as JSON lines')
    .option('--uid <user>', 'owner of created files and directories, a name or a number (default: the owner of DIR)')
    .option('--gid <group>', 'group of created files and directories, a name or a number (default: the group of DIR)')
    .option('--file-perms <mode>', 'mode of created files, octal permission bits (default 0644)')
    .option('--dir-perms <mode>', 'mode of created directories, octal permission bits (default 0755)')
    .option('--state-dir <dir>', 'catalog and control socket', DEFAULT_STATE_DIR)
    .action(async (tier: string, dir: string, opts: ImportCliOptions) => setExitCode(await runImportCli(tier, dir, opts, printer)));
};

export async function runImportCli(tierName: string, dir: string, opts: ImportCliOptions, printer: Printer): Promise<number> {
  const own = ownershipOf(opts);
  const pf = await loadPolicyForRun(opts.config, printer);
  const tier = pickTier(pf, tierName);
  const client = await daemonOrNull(resolve(opts.stateDir));
  if (!client) throw new UserError(`import needs the daemon (it marks the files before they appear): none answers in ${resolve(opts.stateDir)}; start \`tier daemon ${opts.config}\``);
  const view = new ImportView(printer, Boolean(opts.json));
  const req = {
    policyFile: resolve(opts.config),
    tier,
    dir: resolve(dir),
    ...(opts.prefix ? { prefix: opts.prefix } : {}),
    dryRun: Boolean(opts.dryRun),
    delete: Boolean(opts.delete),
    ...own,
  };
  let result: ImportSummary;
  try {
    result = (await client.import(req, (e) => view.event(e as ImportEvent))) as ImportSummary;
  } catch (e) {
    view.clear();
    throw new UserError(`import through the daemon (${client.socket}): ${(e as Error).message}`);
  }
  view.finish(result);
  return result.counts.failed > 0 ? EXIT.failed : EXIT.ok;
}
