// What a command needs from the outside world, so commands stay testable and only
// main.ts touches process.argv / process.exitCode.

export interface Printer {
  out(line: string): void; // stdout, a line
  err(line: string): void; // stderr, a line
  readonly isTTY: boolean;
}

export const processPrinter: Printer = {
  out: (line) => void process.stdout.write(line + '\n'),
  err: (line) => void process.stderr.write(line + '\n'),
  isTTY: Boolean(process.stdout.isTTY),
};

/** An error meant for the user: printed as its message alone, no stack. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

/** Exit codes shared by all commands. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
