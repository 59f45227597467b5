// How `tier import` draws: a progress line on a TTY (rewritten in place), one line per
// reported item (conflicts, kept files, vanished, failures), a summary; --json: every
// event and the summary as JSON lines.
import type { Printer } from '../io.js';
import type { ImportEvent, ImportSummary } from '../../import/run.js';
import { humanSize, showPath } from '../engine-cli.js';

export class ImportView {
  private drawn = false;
  constructor(
    private readonly p: Printer,
    private readonly json: boolean,
  ) {}

  event(e: ImportEvent): void {
    if (this.json) return this.p.out(JSON.stringify(e));
    if (e.type === 'progress') {
      if (!this.p.isTTY) return;
      process.stdout.write(`\r\x1b[Klisted ${e.listed} objects, ${humanSize(e.bytes)}`);
      this.drawn = true;
      return;
    }
    this.clear();
    this.p.out(`${e.kind.padEnd(10)} ${showPath(e.path ?? e.key)}${e.detail ? `: ${e.detail}` : ''}`);
  }

  clear(): void {
    if (this.drawn) process.stdout.write('\r\x1b[K');
    this.drawn = false;
  }

  finish(s: ImportSummary): void {
    this.clear();
    if (this.json) return this.p.out(JSON.stringify({ type: 'summary', ...s }));
    const c = s.counts;
    const verb = s.dryRun ? 'would import' : 'imported';
    this.p.out(
      `${verb} ${s.listed} objects (${humanSize(s.bytes)}) of tier ${s.tier}${s.prefix ? ` under ${s.prefix}` : ''} into ${s.dir} in ${(s.ms / 1000).toFixed(1)} s: ` +
        `${c.created} new, ${c.unchanged} unchanged, ${c.refreshed} refreshed, ${c['kept-local']} kept (changed here), ` +
        `${c.conflict} conflicts, ${c.vanished} vanished, ${c.deleted} deleted, ${c.skipped} skipped, ${c.failed} failed`,
    );
  }
}
