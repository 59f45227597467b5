// `tier daemon ... --detach`: start the daemon in the background and return once it is
// ready (exit 0, `ready` on stdout) or has failed (its exit code; its messages went to
// our stderr). This is what `systemctl reload` runs (packaging/tier.service): ExecReload
// must end, while the daemon it starts (a --takeover of the running one) must stay. The
// daemon names itself the unit's main process (fd-store.ts, MAINPID=).
//
// Invariants:
// - The daemon is its own session (setsid) and keeps our stderr (the journal under systemd).
// - Its stdout is ours only until `ready`: the supervisor writes nothing else there, and a
//   write to the closed pipe later is ignored by it (supervisor.ts).
import { spawn } from 'node:child_process';

export function runDetached(argv: string[], out: (line: string) => void): Promise<number> {
  const args = argv.filter((a) => a !== '--detach');
  const c = spawn(process.execPath, [...process.execArgv, ...args], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => {
    let buf = '';
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      c.stdout!.destroy();
      c.unref();
      resolve(code);
    };
    c.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      if (buf.split('\n').includes('ready')) {
        out('ready');
        finish(0);
      }
    });
    c.on('error', () => finish(1));
    c.on('exit', (code) => finish(code || 1)); // it exited before ready: a failure
  });
}
