// How `tier apply` shows a run: per-file lines (path, size, age, rule, action, tier) when
// not on a TTY or in a dry run, a one-line progress bar on a TTY, JSON lines with --json,
// and a summary: files and bytes per action, projected usage, what failed and why.
import type { Printer } from '../io.js';
import type { ActionEvent, ApplyResult, ProgressEvent } from '../../engine/apply.js';
import { humanAge, humanSize, showPath } from '../engine-cli.js';

export class ApplyView {
  private total = 0;
  private totalBytes = 0;
  private doneFiles = 0;
  private doneBytes = 0;
  private readonly started = Date.now();
  private barShown = false;

  constructor(
    private readonly printer: Printer,
    private readonly json: boolean,
    private readonly dryRun: boolean,
    /** Where the TTY progress bar goes (stderr; raw, it redraws one line). */
    private readonly writeBar: (s: string) => void = (s) => void process.stderr.write(s),
  ) {}

  event(e: ProgressEvent): void {
    if (this.json) {
      if (e.type !== 'done') this.printer.out(JSON.stringify(e));
      return;
    }
    switch (e.type) {
      case 'planned':
        this.total += e.actions;
        this.totalBytes += e.bytes;
        break;
      case 'scan-error':
        this.clearBar();
        this.printer.err(`tier apply: ${e.op} ${showPath(e.path)}: ${e.message}`);
        break;
      case 'action':
        this.doneFiles++;
        this.doneBytes += e.size;
        if (this.printer.isTTY && !this.dryRun) {
          if (e.status === 'failed') {
            this.clearBar();
            this.printer.err(line(e));
          }
          this.bar();
        } else this.printer.out(line(e));
        break;
      default:
        break;
    }
  }

  private bar(): void {
    const secs = Math.max(0.001, (Date.now() - this.started) / 1000);
    const rate = this.doneBytes / secs;
    const eta = rate > 0 ? (this.totalBytes - this.doneBytes) / rate : 0;
    this.writeBar(
      `\r\x1b[K${this.doneFiles}/${this.total} files  ${humanSize(this.doneBytes)}/${humanSize(this.totalBytes)}  ${humanSize(rate)}/s  ETA ${humanAge(eta * 1000)}`,
    );
    this.barShown = true;
  }

  private clearBar(): void {
    if (this.barShown) this.writeBar('\r\x1b[K');
    this.barShown = false;
  }

  finish(r: ApplyResult): void {
    this.clearBar();
    if (this.json) {
      this.printer.out(JSON.stringify({ type: 'summary', ...r }));
      return;
    }
    for (const p of r.policies) {
      const sk = Object.entries(p.skipped)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${n} ${k}`);
      if (p.held > 0) sk.push(`${p.held} held back`);
      this.printer.out(`policy ${p.policy}: ${p.scanned} files scanned, ${p.planned} actions${sk.length ? ` (no action: ${sk.join(', ')})` : ''}`);
      for (const w of p.watermarks)
        this.printer.out(
          `  usage ${w.before.toFixed(1)}% -> ${w.projected.toFixed(1)}% projected` +
            (w.high < 100 ? ` (when > ${w.high}% until < ${w.low}%: ${w.triggered ? 'triggered' : 'not triggered'})` : ''),
        );
    }
    const verb = this.dryRun ? 'would ' : '';
    for (const [kind, t] of Object.entries(r.actions)) this.printer.out(`${verb}${kind}: ${t.files} file${t.files === 1 ? '' : 's'}, ${humanSize(t.bytes)}`);
    if (!this.dryRun) {
      const s = r.status;
      this.printer.out(`done ${s.done}, skipped ${s.skipped}, busy ${s.busy}, failed ${s.failed}; uploaded ${humanSize(r.uploaded)}, freed ${humanSize(r.freed)}`);
    } else this.printer.out(`dry run: nothing changed; would free ${humanSize(r.freed)}`);
    if (r.failures.length > 0) {
      this.printer.err(`tier apply: ${r.failures.length} action${r.failures.length === 1 ? '' : 's'} failed:`);
      for (const f of r.failures) this.printer.err(`  ${f.message}`);
    }
  }
}

function line(e: ActionEvent): string {
  const where = `${e.span.file}:${e.span.line}:${e.span.col}`;
  const status = e.status === 'planned' ? 'plan' : e.status;
  const msg = e.message && e.status !== 'done' ? `  (${e.message})` : '';
  return `${status.padEnd(7)} ${e.action.padEnd(7)} ${(e.tier ?? '-').padEnd(8)} ${humanSize(e.size).padStart(9)}  ${humanAge(e.ageMs).padStart(6)}  rule ${e.rule} (${where})  ${showPath(e.path)}${msg}`;
}
