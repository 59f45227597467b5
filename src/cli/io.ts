// What a command needs from the outside world, so commands stay testable and only
// main.ts touches process.argv / process.exitCode.

export interface Printer {
  out(line: string): void; // stdout, a line
  err(line: string): void; // stderr, a line
  readonly isTTY: boolean;
}

// stdout lines are gathered and written in 64 KiB pieces (a dry run prints a line per file:
// one write(2) each cost more than the scan's own syscalls); flushed before every stderr
// line (the two keep their order), on the next turn of the event loop, and at exit.
let pending: string[] = [];
let pendingBytes = 0;
let flushQueued = false;

function flushOut(): void {
  if (pending.length === 0) return;
  const text = pending.join('');
  pending = [];
  pendingBytes = 0;
  process.stdout.write(text);
}

function queueFlush(): void {
  if (flushQueued) return;
  flushQueued = true;
  setImmediate(() => {
    flushQueued = false;
    flushOut();
  });
}

process.once('exit', flushOut);

export const processPrinter: Printer = {
  out: (line) => {
    pending.push(line + '\n');
    pendingBytes += line.length + 1;
    if (pendingBytes >= 65536) flushOut();
    else queueFlush();
  },
  err: (line) => {
    flushOut();
    process.stderr.write(line + '\n');
  },
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
