// The terminal summary of a reconcile pass (`--json` prints the result object instead).
import { humanSize } from './explain-format.js';
import type { ReconcileResult } from '../../reconcile/reconcile.js';

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function formatReconcile(r: ReconcileResult, hashed: boolean): string[] {
  const out: string[] = [];
  const dirty = r.dirty.bySizeMtime + r.dirty.byHash;
  out.push(`checked ${plural(r.checked, 'file')} with a record`);
  out.push(`dirty: ${dirty} found (${r.dirty.bySizeMtime} by size/mtime, ${r.dirty.byHash} by hash)`);
  for (const f of r.dirty.files) out.push(`  dirty (${f.how})${' '.repeat(Math.max(1, 12 - f.how.length))}${f.path}`);
  out.push(`hashed ${plural(r.hashed.files, 'file')}, ${humanSize(r.hashed.bytes)}`);
  if (r.unverified > 0)
    out.push(
      hashed
        ? `${plural(r.unverified, 'archived file')} with a moved ctime not hashed (busy, or changed meanwhile): the next pass or release checks them`
        : `${plural(r.unverified, 'archived file')} changed metadata since the engine last saw them (ctime): --hash compares their content`,
    );
  for (const s of r.skipped) out.push(`  skipped  ${s.path}: ${s.why}`);
  out.push(`catalog rows: ${r.rows.added} added, ${r.rows.updated} updated, ${r.rows.removed} gone (deleted files: retention started; unmanaged: dropped)`);
  if (r.dryRun) out.push('dry run: nothing changed');
  return out;
}
