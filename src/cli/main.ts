// The only module that reads process.argv and sets process.exitCode.
import { Command, CommanderError } from 'commander';
import { processPrinter, UserError, EXIT } from './io.js';
import { commands } from './commands/index.js';
import { versionText } from './version.js';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('tier')
    .description('policy-driven hierarchical storage management')
    .version(versionText(), '-V, --version', 'print the version of tier and of Node.js')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError(false);
  let code: number = EXIT.ok;
  const setCode = (c: number) => {
    code = Math.max(code, c);
  };
  for (const register of commands) register(program, processPrinter, setCode);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) return EXIT.ok;
      return EXIT.usage;
    }
    if (e instanceof UserError) {
      processPrinter.err(`tier: ${e.message}`);
      return e.exitCode;
    }
    const err = e as Error;
    processPrinter.err(`tier: internal error: ${err?.message ?? String(e)}`);
    if (process.env.TIER_DEBUG) processPrinter.err(String(err?.stack));
    return EXIT.failed;
  }
  return code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`tier: internal error: ${String(e)}\n`);
    process.exitCode = EXIT.failed;
  },
);
