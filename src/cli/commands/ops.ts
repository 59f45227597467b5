// `tier explain`, `tier report`, `tier gc`: the operations commands. Each is a thin
// shell over cli/run/; bad input becomes a UserError (message, non-zero exit, no stack).
import type { RegisterCommand } from './types.js';
import { DEFAULT_STATE_DIR } from '../../daemon/protocol.js';
import { UserError, EXIT } from '../io.js';
import { runExplain } from '../run/explain-run.js';
import { runReport } from '../run/report-run.js';
import { runGc } from '../run/gc-run.js';
import { runWaitReady } from '../run/wait-ready.js';
import { runMetrics } from '../run/metrics-cli.js';

export const register: RegisterCommand = (program, printer, setExitCode) => {
  program
    .command('explain')
    .description('for one file: every rule with each condition\'s value, the watermark, and what the next run does')
    .argument('<path>', 'the file to explain')
    .requiredOption('--config <policyfile>', 'the policy file to evaluate')
    .option('--json', 'print the explanation as JSON')
    .option('--state-dir <dir>', 'where the recall log lives (for the cooldown)', DEFAULT_STATE_DIR)
    .action(async (path: string, opts: { config: string; json?: boolean; stateDir: string }) =>
      setExitCode(await runExplain(path, opts, printer)),
    );

  program
    .command('report')
    .description('files and bytes per state, tier and policy; size and age histograms; top recalls; last runs')
    .option('--json', 'print the report as JSON')
    .option('--html <file>', 'also write the report as one self-contained HTML page with charts')
    .option('--state-dir <dir>', 'where the catalog and recall log live', DEFAULT_STATE_DIR)
    .option('--config <policyfile>', 'also break the figures down per policy of this file')
    .option('--top <n>', 'how many of the most recalled files to list', (v) => positiveInt('--top', v), 10)
    .action(async (opts: { json?: boolean; html?: string; stateDir: string; config?: string; top: number }) => setExitCode(await runReport(opts, printer)));

  program
    .command('gc')
    .description('delete tier objects no file references any more, once past keep_deleted')
    .requiredOption('--config <policyfile>', 'the policy file naming the tiers, filesets and keep_deleted')
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('--json', 'print the result as JSON')
    .option('--state-dir <dir>', 'where the catalog and the orphan first-seen times live', DEFAULT_STATE_DIR)
    .action(async (opts: { config: string; dryRun?: boolean; json?: boolean; stateDir: string }) => setExitCode(await runGc(opts, printer)));

  program
    .command('wait-ready')
    .description('wait until the daemon has marked every released file and answers (systemd ExecStartPost)')
    .option('--state-dir <dir>', 'the daemon\'s state directory', DEFAULT_STATE_DIR)
    .option('--timeout <seconds>', 'give up after this many seconds', (v) => positiveInt('--timeout', v), 300)
    .action(async (opts: { stateDir: string; timeout: number }) =>
      setExitCode(await runWaitReady({ stateDir: opts.stateDir, timeout: opts.timeout * 1000 }, printer)),
    );

  program
    .command('metrics')
    .description('print the running daemon\'s metrics (Prometheus text format)')
    .option('--state-dir <dir>', 'the daemon\'s state directory', DEFAULT_STATE_DIR)
    .action(async (opts: { stateDir: string }) => setExitCode(await runMetrics(opts, printer)));
};

function positiveInt(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UserError(`${flag}: expected a positive whole number, got "${v}"`, EXIT.usage);
  return n;
}
