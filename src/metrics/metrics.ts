// The daemon's Prometheus registry, on prom-client: counters, gauges and histograms with
// labels in text format 0.0.4, plus (on request) prom-client's default process metrics:
// CPU, memory, open fds, event-loop lag, GC pauses, heap (process_*, nodejs_*).
// What stays here: a registry object per daemon (prom-client's global one would mix
// tests and daemons), factories with positional arguments as the call sites use them,
// and collect hooks that run before each render (values read from elsewhere: catalog
// totals, queues, limiters), in registration order.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';

export { Counter, Gauge, Histogram };
export type Labels = Record<string, string>;

export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
export const CONTENT_TYPE = PromRegistry.PROMETHEUS_CONTENT_TYPE;

export class Registry {
  readonly prom = new PromRegistry();
  private readonly collectors: (() => void)[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return new Counter({ name, help, labelNames, registers: [this.prom] });
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return new Gauge({ name, help, labelNames, registers: [this.prom] });
  }
  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets: readonly number[] = DEFAULT_BUCKETS): Histogram {
    for (let i = 1; i < buckets.length; i++) if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`metric ${name}: buckets must increase`);
    return new Histogram({ name, help, labelNames, buckets: [...buckets], registers: [this.prom] });
  }

  /** prom-client's process_* and nodejs_* metrics (the daemon's; not in unit tests: they change between renders). */
  processMetrics(): void {
    collectDefaultMetrics({ register: this.prom });
  }

  /** `fn` runs before each render: gauges read from elsewhere (catalog, queues) are set there. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  async render(): Promise<string> {
    for (const fn of this.collectors) fn();
    return this.prom.metrics();
  }
}
