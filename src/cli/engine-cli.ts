// Shared by `tier apply`, `tier status` and the manual actions: loading a policy for a
// run (diagnostics printed, never a stack), finding the daemon, and human formatting.
import { loadPolicyFile, PolicyReadError } from '../dsl/load.js';
import { formatDiagnostic, hasErrors } from '../dsl/index.js';
import type { PolicyFile } from '../dsl/ast.js';
import { connectDaemon, DaemonError, type DaemonClient } from '../daemon/client.js';
import { EXIT, UserError, type Printer } from './io.js';

export async function loadPolicyForRun(path: string, printer: Printer): Promise<PolicyFile> {
  let loaded;
  try {
    loaded = await loadPolicyFile(path);
  } catch (e) {
    if (e instanceof PolicyReadError) throw new UserError(e.message, EXIT.usage);
    throw e;
  }
  for (const d of loaded.diagnostics) if (d.severity === 'error') printer.err(formatDiagnostic(d, loaded.text));
  if (hasErrors(loaded.diagnostics) || !loaded.policy) {
    const n = loaded.diagnostics.filter((d) => d.severity === 'error').length;
    throw new UserError(`${path}: ${n} error${n === 1 ? '' : 's'}; nothing was run (see \`tier check ${path}\`)`);
  }
  return loaded.policy;
}

export async function daemonOrNull(stateDir: string): Promise<DaemonClient | null> {
  try {
    return await connectDaemon(stateDir);
  } catch (e) {
    if (e instanceof DaemonError) throw new UserError(e.message);
    throw e;
  }
}

/** The tier a manual action goes to: the one named, or the policy's only tier. */
export function pickTier(pf: PolicyFile, name: string | undefined): string {
  const names = pf.tiers.map((t) => t.name);
  if (name !== undefined) {
    if (!names.includes(name)) throw new UserError(`${pf.file}: no tier named "${name}" (tiers: ${names.join(', ') || 'none'})`, EXIT.usage);
    return name;
  }
  if (names.length === 1) return names[0]!;
  throw new UserError(`${pf.file}: ${names.length === 0 ? 'no tiers' : `several tiers (${names.join(', ')})`}: say which with --tier`, EXIT.usage);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function humanSize(n: number): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${UNITS[i]}`;
}

export function humanAge(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}min`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** A path on one line: quoted as JSON when it holds control characters or edge spaces. */
export function showPath(p: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f]|^\s|\s$/.test(p) ? JSON.stringify(p) : p;
}
