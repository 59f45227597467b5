// `tier explain PATH --config POLICYFILE [--json] [--state-dir DIR]`: gathers the facts for
// one file (lstat + trusted.tier.state, filesystem usage of each root, its last recall)
// and prints what explain.ts concludes. Read-only: opens nothing that could raise a
// fanotify event (lstat and lgetxattr by path only).
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { lstatSync, realpathSync } from 'node:fs';
import { atBeneath } from '../../kernel/beneath.js';
import { factsFrom } from '../../engine/scan.js';
import type { Printer } from '../io.js';
import { UserError, EXIT } from '../io.js';
import { explainFile, type FileExplanation } from '../../reports/explain.js';
import { formatExplanation } from '../format/explain-format.js';
import { loadCheckedPolicy } from './load-policy.js';
import { fsUsage } from '../../schedule/usage.js';
import { RecallLog, recallLogPath } from '../../reports/recall-log.js';
import { filesetMembership } from '../../reports/membership.js';

export interface ExplainOptions {
  config: string;
  json?: boolean;
  stateDir: string;
  now?: number;
}

export async function gatherExplanation(path: string, opts: ExplainOptions): Promise<FileExplanation> {
  const pf = await loadCheckedPolicy(opts.config);
  // The parent is resolved (symlinked directories), the file itself is not followed.
  let abs = resolve(path);
  try {
    abs = resolve(realpathSync(dirname(abs)), abs.slice(dirname(abs).length + 1));
  } catch {
    // lstat below names the problem
  }
  // From here no symlink in any component (kernel/beneath.ts): a swap after realpath is refused.
  const name = abs.slice(dirname(abs).length + 1);
  const facts = (() => {
    try {
      return atBeneath(abs, null, (at) => {
        const st = lstatSync(at, { bigint: true });
        if (!st.isFile()) throw new UserError(`explain ${abs}: not a regular file; only regular files are managed`, EXIT.usage);
        return factsFrom(dirname(abs), name, abs, st, at);
      });
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`explain ${abs}: lstat: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.usage);
    }
  })();

  const usage = new Map<string, number>();
  for (const fs of pf.filesets) {
    const m = filesetMembership(fs, abs);
    if (m.member && !usage.has(m.root)) {
      try {
        usage.set(m.root, (await fsUsage(m.root)).percent);
      } catch {
        // shown as unknown
      }
    }
  }
  let lastRecallAt: number | null = null;
  const logFile = recallLogPath(opts.stateDir);
  if (existsSync(logFile)) {
    const log = new RecallLog(logFile);
    try {
      lastRecallAt = log.recentlyRecalled({ path: abs, dev: facts.dev, ino: facts.ino }, 0);
    } finally {
      log.close();
    }
  }
  return explainFile(pf, facts, { now: opts.now ?? Date.now(), usage, lastRecallAt });
}

export async function runExplain(path: string, opts: ExplainOptions, printer: Printer): Promise<number> {
  const ex = await gatherExplanation(path, opts);
  const now = opts.now ?? Date.now();
  if (opts.json) printer.out(JSON.stringify(toJSON(ex), null, 2));
  else for (const line of formatExplanation(ex, now)) printer.out(line);
  return EXIT.ok;
}

/** Plain JSON: the record stays, the engine-internal facts are trimmed to what admins read. */
function toJSON(ex: FileExplanation): unknown {
  const f = ex.facts;
  return {
    path: ex.path,
    file: { size: f.size, blocks: f.blocks, state: f.state, pinned: f.pinned, owner: f.owner, group: f.group, atimeMs: f.atimeMs, mtimeMs: f.mtimeMs, ctimeMs: f.ctimeMs, dev: f.dev, ino: f.ino, record: f.record },
    policies: ex.policies,
    outside: ex.outside,
  };
}
