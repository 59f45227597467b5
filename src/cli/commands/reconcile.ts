// `tier reconcile [--dry-run] [--hash] [--json] [--config POLICYFILE...] [--state-dir DIR]`:
// finds what changed while the daemon was down (src/reconcile/reconcile.ts) and fixes records
// and catalog rows; through the daemon when one runs.
import type { RegisterCommand } from './types.js';
import { DEFAULT_STATE_DIR } from '../../daemon/protocol.js';
import { runReconcile, type ReconcileCliOptions } from '../run/reconcile-run.js';

export const register: RegisterCommand = (program, printer, setExitCode) => {
  program
    .command('reconcile')
    .description('compare every managed file with its record and catalog row; mark changed archived files dirty; fix the catalog')
    .option('--config <policyfile...>', 'the filesets to walk (default: the running daemon\'s)')
    .option('--hash', 'hash archived files whose ctime moved and compare with their copy\'s SHA-256')
    .option('--dry-run', 'report only: no record or catalog row is changed')
    .option('--json', 'print the result as JSON')
    .option('--state-dir <dir>', 'catalog and control socket', DEFAULT_STATE_DIR)
    .action(async (opts: ReconcileCliOptions) => setExitCode(await runReconcile(opts, printer)));
};
