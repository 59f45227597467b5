// `tier wait-ready [--state-dir DIR] [--timeout 5min]`: exits 0 once the daemon answers on
// its control socket, which it opens only after every released file is marked. systemd
// runs it as ExecStartPost, so units ordered After=tier.service start only when a read of
// a released file is recalled instead of returning zeros.
import { setTimeout as sleep } from 'node:timers/promises';
import { connectDaemon, DaemonError } from '../../daemon/client.js';
import { socketPath } from '../../daemon/protocol.js';
import { UserError, EXIT, type Printer } from '../io.js';

export async function waitReady(
  stateDir: string,
  timeoutMs: number,
  opts: { pollMs?: number; now?: () => number } = {},
): Promise<boolean> {
  const now = opts.now ?? Date.now;
  const deadline = now() + timeoutMs;
  for (;;) {
    try {
      if (await connectDaemon(stateDir)) return true;
    } catch (e) {
      if (!(e instanceof DaemonError)) throw e;
      // a socket that answers oddly is not ready yet; keep polling until the deadline
    }
    if (now() >= deadline) return false;
    await sleep(opts.pollMs ?? 200);
  }
}

export async function runWaitReady(opts: { stateDir: string; timeout: number }, printer: Printer): Promise<number> {
  if (await waitReady(opts.stateDir, opts.timeout)) {
    printer.out('ready');
    return EXIT.ok;
  }
  throw new UserError(`the daemon did not answer on ${socketPath(opts.stateDir)} within ${Math.round(opts.timeout / 1000)}s`, EXIT.failed);
}
