import type { Command } from 'commander';
import type { Printer } from '../io.js';

/** Each command file exports one of these; it adds its subcommand to the program. */
export type RegisterCommand = (program: Command, printer: Printer, setExitCode: (code: number) => void) => void;
