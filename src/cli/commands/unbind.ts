// `tier unbind POLICYFILE... [--state-dir DIR]`: detaches the fileset roots that a daemon
// killed outright (kill -9 of every tier process, OOM) left bound. A bind outlives its
// creator; with no group marking the files, its root would show released files as zeros
// until the next daemon starts. systemd runs this as ExecStopPost. Refused while a daemon
// holds the state dir: a running daemon detaches its roots itself when it stops.
import { resolve } from 'node:path';
import { backingsOf, detachBackings, isBound } from '../../daemon/backing.js';
import { parsePolicyFiles } from '../../daemon/policies.js';
import { DEFAULT_STATE_DIR } from '../../daemon/protocol.js';
import { lockStateDir, StateDirBusy } from '../../daemon/state-lock.js';
import { jsonLogger } from '../../log.js';
import { UserError, EXIT } from '../io.js';
import type { RegisterCommand } from './types.js';

export const register: RegisterCommand = (program, printer, setExitCode) => {
  program
    .command('unbind')
    .description('detach fileset roots left bound by a daemon that was killed (systemd ExecStopPost)')
    .argument('<policyfile...>', 'policy files whose filesets declare a backing')
    .option('--state-dir <dir>', 'the daemon state dir (refused while a daemon holds it)', DEFAULT_STATE_DIR)
    .action((files: string[], opts: { stateDir: string }) => {
      const parsed = parsePolicyFiles(files.map((f) => resolve(f)));
      if (!parsed.ok) throw new UserError(parsed.message, EXIT.failed);
      const { backings, problems } = backingsOf(parsed.policies);
      if (problems.length > 0) throw new UserError(problems.join('\n'), EXIT.failed);
      let unlock: () => void;
      try {
        unlock = lockStateDir(resolve(opts.stateDir));
      } catch (e) {
        if (e instanceof StateDirBusy) throw new UserError(`${e.message} (a running daemon detaches its roots when it stops)`, EXIT.failed);
        throw new UserError(`${opts.stateDir}: ${(e as Error).message}`, EXIT.usage);
      }
      try {
        const bound = backings.filter(isBound);
        detachBackings(bound, jsonLogger((l) => printer.err(l), 'warn'));
        for (const b of backings) printer.out(`${b.root}: ${bound.includes(b) ? (isBound(b) ? 'still bound' : 'detached') : 'not bound'}`);
        setExitCode(backings.some(isBound) ? EXIT.failed : EXIT.ok);
      } finally {
        unlock();
      }
    });
};
