// `tier explain`, `tier report`, `tier gc`: the operations commands. Each is a thin
// shell over src/ops; bad input becomes a UserError (message, non-zero exit, no stack).
import type { RegisterCommand } from './types.js';
import { DEFAULT_STATE_DIR } from '../../daemon/protocol.js';
import { runExplain } from '../../ops/explain-run.js';

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
};
