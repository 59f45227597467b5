// A small Prometheus text-format (0.0.4) registry: counters, gauges and histograms with
// labels. Enough for `GET /metrics`; no dependency. Series are kept per label set in
// insertion order so the output is stable for tests and diffs.
//
// Escaping (per the exposition format): HELP text escapes `\` and newline; label values
// escape `\`, `"` and newline.

export type Labels = Record<string, string>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

abstract class Metric {
  protected readonly series = new Map<string, { labels: Labels; value: number }>();
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!METRIC_NAME.test(name)) throw new Error(`metric name "${name}" is not valid`);
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith('__') || l === 'le') throw new Error(`metric ${name}: label name "${l}" is not valid`);
    }
  }

  protected key(labels: Labels): string {
    const extra = Object.keys(labels).filter((k) => !this.labelNames.includes(k));
    if (extra.length) throw new Error(`metric ${this.name}: unknown label ${extra.join(', ')}`);
    const missing = this.labelNames.filter((k) => labels[k] === undefined);
    if (missing.length) throw new Error(`metric ${this.name}: missing label ${missing.join(', ')}`);
    return JSON.stringify(this.labelNames.map((k) => labels[k]));
  }

  protected cell(labels: Labels): { labels: Labels; value: number } {
    const k = this.key(labels);
    let c = this.series.get(k);
    if (!c) this.series.set(k, (c = { labels: { ...labels }, value: 0 }));
    return c;
  }

  abstract samples(): string[];

  render(): string {
    return [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.samples()].join('\n');
  }
}

export class Counter extends Metric {
  readonly type = 'counter';
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`metric ${this.name}: a counter only goes up (inc by ${by})`);
    this.cell(labels).value += by;
  }
  get(labels: Labels = {}): number {
    return this.series.get(this.key(labels))?.value ?? 0;
  }
  samples(): string[] {
    return [...this.series.values()].map((s) => sample(this.name, s.labels, s.value));
  }
}

export class Gauge extends Metric {
  readonly type = 'gauge';
  set(labels: Labels, value: number): void {
    this.cell(labels).value = value;
  }
  inc(labels: Labels = {}, by = 1): void {
    this.cell(labels).value += by;
  }
  dec(labels: Labels = {}, by = 1): void {
    this.cell(labels).value -= by;
  }
  get(labels: Labels = {}): number {
    return this.series.get(this.key(labels))?.value ?? 0;
  }
  /** Drops every series (before re-setting them all from a fresh count, e.g. bytes per state). */
  reset(): void {
    this.series.clear();
  }
  samples(): string[] {
    return [...this.series.values()].map((s) => sample(this.name, s.labels, s.value));
  }
}

interface HistCell {
  labels: Labels;
  counts: number[]; // per bucket, not cumulative
  sum: number;
  count: number;
}

export class Histogram extends Metric {
  readonly type = 'histogram';
  private readonly cells = new Map<string, HistCell>();
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[] = DEFAULT_BUCKETS) {
    super(name, help, labelNames);
    const b = [...buckets].filter((x) => x !== Infinity);
    for (let i = 1; i < b.length; i++) if (!(b[i]! > b[i - 1]!)) throw new Error(`metric ${name}: buckets must increase`);
    this.buckets = b;
  }

  observe(labels: Labels, value: number): void {
    const k = this.key(labels);
    let c = this.cells.get(k);
    if (!c) this.cells.set(k, (c = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    const i = this.buckets.findIndex((le) => value <= le);
    if (i >= 0) c.counts[i]!++;
    c.sum += value;
    c.count++;
  }

  get(labels: Labels = {}): { count: number; sum: number } {
    const c = this.cells.get(this.key(labels));
    return { count: c?.count ?? 0, sum: c?.sum ?? 0 };
  }

  samples(): string[] {
    const out: string[] = [];
    for (const c of this.cells.values()) {
      let cum = 0;
      this.buckets.forEach((le, i) => {
        cum += c.counts[i]!;
        out.push(sample(`${this.name}_bucket`, { ...c.labels, le: formatValue(le) }, cum));
      });
      out.push(sample(`${this.name}_bucket`, { ...c.labels, le: '+Inf' }, c.count));
      out.push(sample(`${this.name}_sum`, c.labels, c.sum));
      out.push(sample(`${this.name}_count`, c.labels, c.count));
    }
    return out;
  }
}

export class Registry {
  private readonly metrics = new Map<string, Metric>();
  private readonly collectors: (() => void)[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }
  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets?: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  /** `fn` runs before each render: gauges read from elsewhere (catalog, queues) are set there. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  render(): string {
    for (const fn of this.collectors) fn();
    return [...this.metrics.values()].map((m) => m.render()).join('\n') + '\n';
  }

  private add<M extends Metric>(m: M): M {
    if (this.metrics.has(m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.set(m.name, m);
    return m;
  }
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function sample(name: string, labels: Labels, value: number): string {
  const keys = Object.keys(labels);
  const ls = keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(',')}}` : '';
  return `${name}${ls} ${formatValue(value)}`;
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
