// `tier status PATH... [--json]`: per file its HSM state, like `lfs hsm_state`. Reads the
// trusted.tier.state record directly (lgetxattr: no open, so no recall is triggered) and
// works without a daemon. --json prints one array of {path, state, pinned, size,
// residentBytes, tier, key}.
import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import type { RegisterCommand } from './types.js';
import { EXIT, type Printer } from '../io.js';
import type { FileState } from '../../dsl/ast.js';
import { lgetxattr } from '../../kernel/libc.js';
import { atBeneath } from '../../kernel/beneath.js';
import { decodeRecord, XATTR_STATE } from '../../record/state-record.js';
import { deriveState, residentBytes } from '../../engine/facts.js';
import { humanSize, showPath } from '../engine-cli.js';

export interface StatusRow {
  path: string;
  state: FileState;
  pinned: boolean;
  size: number;
  residentBytes: number;
  tier: string | null;
  key: string | null;
}

export const register: RegisterCommand = (program, printer, setExitCode) => {
  program
    .command('status')
    .description('show the HSM state of files (works without a daemon)')
    .argument('<paths...>', 'files')
    .option('--json', 'print a JSON array')
    .action((paths: string[], opts: { json?: boolean }) => setExitCode(runStatus(paths, Boolean(opts.json), printer)));
};

export function statusOf(path: string): StatusRow {
  const abs = resolve(path);
  // No symlink in any component (kernel/beneath.ts): what a user swaps in is not reported as theirs.
  const { st, rec } = atBeneath(abs, null, (at) => {
    const st = lstatSync(at, { bigint: true });
    if (!st.isFile()) throw new Error(st.isSymbolicLink() ? 'is a symlink (not followed)' : 'not a regular file');
    return { st, rec: decodeRecord(lgetxattr(at, XATTR_STATE)) };
  });
  const size = Number(st.size);
  return {
    path: abs,
    state: deriveState(rec, { size, mtimeNs: st.mtimeNs.toString() }),
    pinned: rec?.pinned ?? false,
    size,
    residentBytes: residentBytes({ size, blocks: Number(st.blocks) }),
    tier: rec?.copy?.tier ?? null,
    key: rec?.copy?.key ?? null,
  };
}

export function runStatus(paths: string[], json: boolean, printer: Printer): number {
  const rows: StatusRow[] = [];
  let code: number = EXIT.ok;
  for (const p of paths) {
    try {
      rows.push(statusOf(p));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      printer.err(`tier status: ${showPath(p)}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
      code = EXIT.failed;
    }
  }
  if (json) {
    printer.out(JSON.stringify(rows));
    return code;
  }
  if (rows.length > 0) printer.out(`${'STATE'.padEnd(9)} ${'PINNED'.padEnd(6)} ${'SIZE'.padStart(9)} ${'RESIDENT'.padStart(9)} ${'TIER'.padEnd(8)} ${'KEY'.padEnd(39)} PATH`);
  for (const r of rows)
    printer.out(
      `${r.state.padEnd(9)} ${(r.pinned ? 'yes' : 'no').padEnd(6)} ${humanSize(r.size).padStart(9)} ${humanSize(r.residentBytes).padStart(9)} ${(r.tier ?? '-').padEnd(8)} ${(r.key ?? '-').padEnd(39)} ${showPath(r.path)}`,
    );
  return code;
}
