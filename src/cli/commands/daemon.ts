// `tier daemon POLICYFILE... [--state-dir DIR] [--log-level L] [--takeover] [--detach]`: the recall service and the
// executor of releases, in the foreground. Prints `ready` on stdout once every released file
// is marked; JSON log lines on stderr; exits 0 on SIGTERM/SIGINT.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { jsonLogger, type LogLevel } from '../../log.js';
import { tagged } from '../../daemon/log-tag.js';
import { DEFAULT_STATE_DIR } from '../../daemon/protocol.js';
import { runSupervisor } from '../../daemon/supervisor.js';
import { runDetached } from '../../daemon/detach.js';
import { UserError, EXIT } from '../io.js';
import type { RegisterCommand } from './types.js';

const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error'];

export const register: RegisterCommand = (program, printer, setExitCode) => {
  program
    .command('daemon')
    .description('run the recall service and the release executor (foreground; prints "ready")')
    .argument('<policyfile...>', 'policy files whose tiers and recall settings the daemon serves')
    .option('--state-dir <dir>', 'catalog, control socket and in-flight record', DEFAULT_STATE_DIR)
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .option('--metrics-listen <addr>', 'also serve GET /metrics on PORT or HOST:PORT (loopback only)')
    .option('--takeover', 'replace the daemon running on the same filesystems: take its fanotify group (marks) and state dir, no reader gets an error')
    .option('--detach', 'run in the background: return once the daemon is ready (exit 0) or has failed (its exit code); for ExecReload')
    .option('--reconcile-interval <seconds>', 'a reconciliation pass at start and every this many seconds; 0: none', '86400')
    .action(async (files: string[], opts: { stateDir: string; logLevel: string; metricsListen?: string; reconcileInterval: string; takeover?: boolean; detach?: boolean }) => {
      const every = Number(opts.reconcileInterval);
      if (!Number.isInteger(every) || every < 0)
        throw new UserError(`--reconcile-interval: expected a whole number of seconds (0: none), got "${opts.reconcileInterval}"`, EXIT.usage);
      if (!LEVELS.includes(opts.logLevel))
        throw new UserError(`--log-level: expected one of ${LEVELS.join(', ')}, got "${opts.logLevel}"`, EXIT.usage);
      for (const f of files) if (!existsSync(f)) throw new UserError(`${f}: no such policy file`, EXIT.usage);
      if (process.getuid?.() !== 0)
        throw new UserError('the daemon needs root (fanotify permission events and trusted.* xattrs)');
      if (opts.detach) return setExitCode(await runDetached(process.argv.slice(1), (l) => printer.out(l)));
      const base = jsonLogger((l) => printer.err(l), opts.logLevel as LogLevel);
      const code = await runSupervisor({
        policyFiles: files.map((f) => resolve(f)),
        stateDir: resolve(opts.stateDir),
        logLevel: opts.logLevel,
        metricsListen: opts.metricsListen,
        reconcileIntervalMs: every * 1000,
        takeover: opts.takeover === true,
        log: tagged(base, { role: 'supervisor', rolePid: process.pid }),
        out: (line) => printer.out(line),
        err: (line) => printer.err(line),
      });
      setExitCode(code);
    });
};
