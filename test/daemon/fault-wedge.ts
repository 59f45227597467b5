// FAULT INJECTION, test only (loaded with `node --import`, inherited by the worker): when the
// file named by TIER_FAULT_WEDGE appears, the worker opens the path written in it with a
// synchronous open(). On a released (marked) file that open raises FAN_OPEN_PERM for the
// worker's own group, and the event loop that would answer it is the one blocked: the
// worker is wedged for real, the way a synchronous open in worker code wedges it.
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';

const flag = process.env.TIER_FAULT_WEDGE;
if (flag && process.argv[1]?.includes('worker-main')) {
  const timer = setInterval(() => {
    if (!existsSync(flag)) return;
    const path = readFileSync(flag, 'utf8').trim();
    rmSync(flag);
    clearInterval(timer);
    closeSync(openSync(path, 'r'));
  }, 20);
  timer.unref();
}
