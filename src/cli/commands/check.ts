// `tier check FILE... [--json] [--print]`: parse and validate policy files.
// Exit 0 when every file is valid (warnings allowed), 1 when any has an error, 2 when a
// file cannot be read (bad flags are turned into 2 by main.ts). Diagnostics go to stderr;
// `--json` writes one JSON document to stdout instead, `--print` the normalised policies.
import type { RegisterCommand } from './types.js';
import { EXIT, type Printer } from '../io.js';
import { loadPolicyFile, PolicyReadError, type LoadedPolicy } from '../../dsl/load.js';
import { diagnosticToJSON, formatDiagnostic, hasErrors, printPolicy } from '../../dsl/index.js';

export interface CheckOptions {
  json?: boolean;
  print?: boolean;
}

export const register: RegisterCommand = (program, printer, setExitCode) => {
  program
    .command('check')
    .description('check .hsmpolicy files and report every problem with file:line:col')
    .argument('<files...>', 'policy files to check')
    .option('--json', 'print the diagnostics as JSON on stdout')
    .option('--print', 'print the normalised policy of each valid file')
    .action(async (files: string[], opts: CheckOptions) => setExitCode(await runCheck(files, opts, printer)));
};

interface FileReport {
  file: string;
  readError?: string;
  loaded?: LoadedPolicy;
}

export async function runCheck(files: string[], opts: CheckOptions, printer: Printer): Promise<number> {
  const reports: FileReport[] = [];
  for (const file of files) {
    try {
      reports.push({ file, loaded: await loadPolicyFile(file) });
    } catch (e) {
      if (!(e instanceof PolicyReadError)) throw e;
      reports.push({ file, readError: e.message });
    }
  }
  let code: number = EXIT.ok;
  for (const r of reports) {
    if (r.readError) code = Math.max(code, EXIT.usage);
    else if (hasErrors(r.loaded!.diagnostics)) code = Math.max(code, EXIT.failed);
  }
  if (opts.json) printJSON(reports, opts, printer);
  else printText(reports, opts, printer);
  return code;
}

function counts(r: LoadedPolicy): { errors: number; warnings: number } {
  const errors = r.diagnostics.filter((d) => d.severity === 'error').length;
  return { errors, warnings: r.diagnostics.length - errors };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function printText(reports: FileReport[], opts: CheckOptions, printer: Printer): void {
  for (const r of reports) {
    if (r.readError) {
      printer.err(`tier check: ${r.readError}`);
      continue;
    }
    const l = r.loaded!;
    for (const d of l.diagnostics) printer.err(formatDiagnostic(d, l.text));
    const { errors, warnings } = counts(l);
    const valid = errors === 0 && l.policy !== null;
    if (opts.print) {
      if (valid) printer.out((reports.length > 1 ? `# ${r.file}\n` : '') + printPolicy(l.policy!).trimEnd());
      else printer.err(`${r.file}: not printed: ${plural(errors, 'error')}`);
      continue;
    }
    if (valid) {
      const p = l.policy!;
      const what = `${plural(p.tiers.length, 'tier')}, ${plural(p.filesets.length, 'fileset')}, ${plural(p.policies.length, 'policy').replace('policys', 'policies')}`;
      printer.out(`${r.file}: ok (${what}${warnings ? `; ${plural(warnings, 'warning')}` : ''})`);
    } else {
      printer.err(`${r.file}: ${plural(errors, 'error')}${warnings ? `, ${plural(warnings, 'warning')}` : ''}`);
    }
  }
}

function printJSON(reports: FileReport[], opts: CheckOptions, printer: Printer): void {
  const files = reports.map((r) => {
    if (r.readError) return { file: r.file, valid: false, readError: r.readError, diagnostics: [] };
    const l = r.loaded!;
    const { errors, warnings } = counts(l);
    const valid = errors === 0 && l.policy !== null;
    const o: Record<string, unknown> = { file: r.file, valid, errors, warnings, diagnostics: l.diagnostics.map(diagnosticToJSON) };
    if (opts.print && valid) o.normalised = printPolicy(l.policy!);
    return o;
  });
  printer.out(JSON.stringify({ valid: files.every((f) => f.valid), files }, null, 2));
}
