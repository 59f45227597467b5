// Every command module and the names it registers. main.ts loads only the module of the
// command being run (a dry run over a million files should not first load the S3 SDK and
// SQLite); help and unknown names load them all, in this order.
import type { RegisterCommand } from './types.js';

export interface CommandModule {
  names: readonly string[];
  load: () => Promise<{ register: RegisterCommand }>;
}

export const commands: CommandModule[] = [
  { names: ['check'], load: () => import('./check.js') },
  { names: ['apply'], load: () => import('./apply.js') },
  { names: ['status'], load: () => import('./status.js') },
  { names: ['archive', 'release', 'recall', 'pin', 'unpin'], load: () => import('./manual.js') },
  { names: ['daemon'], load: () => import('./daemon.js') },
  { names: ['doctor'], load: () => import('./doctor.js') },
  { names: ['explain', 'report', 'gc', 'wait-ready', 'metrics'], load: () => import('./ops.js') },
  { names: ['reconcile'], load: () => import('./reconcile.js') },
  { names: ['unbind'], load: () => import('./unbind.js') },
  { names: ['import'], load: () => import('./import.js') },
];

/** The modules to load for argv: the named command's alone, or all of them. */
export function modulesFor(argv: readonly string[]): CommandModule[] {
  const name = argv[0];
  const one = name === undefined ? [] : commands.filter((c) => c.names.includes(name));
  return one.length === 1 ? one : commands;
}
