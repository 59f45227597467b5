// Loads the daemon's policy files into what the worker serves: one tier registry and one
// set of recall settings for all of them. Errors come back as one message with every
// diagnostic (file:line:col, source line, caret), never as a throw.
import { readFileSync } from 'node:fs';
import type { PolicyFile, RecallSettings, TierDecl } from '../dsl/ast.js';
import { formatDiagnostic, hasErrors } from '../dsl/diagnostics.js';
import { parsePolicy } from '../dsl/index.js';
import { DaemonTiers } from './tier-views.js';

export type Loaded =
  | { ok: true; policies: PolicyFile[]; tiers: DaemonTiers; decls: Map<string, TierDecl>; settings: RecallSettings }
  | { ok: false; message: string };

/** Parses and validates every file; tiers of the same name must be declared identically. */
export function parsePolicyFiles(files: string[]): { ok: true; policies: PolicyFile[] } | { ok: false; message: string } {
  const policies: PolicyFile[] = [];
  const problems: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      problems.push(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      continue;
    }
    const { policy, diagnostics } = parsePolicy(text, file);
    const errors = diagnostics.filter((d) => d.severity === 'error');
    if (!policy || hasErrors(diagnostics)) problems.push(...errors.map((d) => formatDiagnostic(d, text)));
    else policies.push(policy);
  }
  if (problems.length) return { ok: false, message: `invalid policy:\n${problems.join('\n')}` };
  return { ok: true, policies };
}

export async function loadPolicies(files: string[]): Promise<Loaded> {
  const parsed = parsePolicyFiles(files);
  if (!parsed.ok) return parsed;
  const decls = new Map<string, TierDecl>();
  const problems: string[] = [];
  for (const pf of parsed.policies)
    for (const d of pf.tiers) {
      const prev = decls.get(d.name);
      if (!prev) decls.set(d.name, d);
      else if (!sameTier(prev, d))
        problems.push(`${d.span.file}:${d.span.line}:${d.span.col}: tier "${d.name}" differs from ${at(prev)}`);
    }
  if (problems.length) return { ok: false, message: problems.join('\n') };
  const tiers = new DaemonTiers();
  for (const d of decls.values()) tiers.add(d);
  const wholeFileFor = new Set<string>();
  for (const pf of parsed.policies) for (const c of pf.recall.wholeFileFor) wholeFileFor.add(c);
  return { ok: true, policies: parsed.policies, tiers, decls, settings: { wholeFileFor: [...wholeFileFor] } };
}

/** Same storage behind the name (spans and tuning aside). */
export function sameTier(a: TierDecl, b: TierDecl): boolean {
  return JSON.stringify(where(a)) === JSON.stringify(where(b));
}

function where(d: TierDecl): unknown {
  if (d.kind === 'http') return ['http', d.url];
  return d.kind === 'local' ? ['local', d.path] : ['s3', d.endpoint ?? '', d.bucket, d.prefix];
}

function at(d: TierDecl): string {
  return `${d.span.file}:${d.span.line}:${d.span.col}`;
}

/** Every fileset root of the policies in force: paths acted on must lie beneath one (kernel/beneath.ts). */
export function filesetRoots(policies: readonly PolicyFile[]): string[] {
  return [...new Set(policies.flatMap((pf) => pf.filesets.flatMap((f) => f.roots)))];
}
