import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from '../../src/metrics/metrics.js';
import { createTierMetrics, observeRecall, setStateTotals, setTierTotals } from '../../src/metrics/tier-metrics.js';

interface Parsed {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

// An independent reader of the text format, so escaping is checked by round trip.
function parse(text: string): Parsed {
  const out: Parsed = { help: new Map(), type: new Map(), samples: [] };
  assert.ok(text.endsWith('\n'), 'exposition ends with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      out.help.set(m[1]!, m[2]!.replace(/\\(\\|n)/g, (_, c) => (c === 'n' ? '\n' : '\\')));
      continue;
    }
    m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      out.type.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const body = m[2].slice(1, -1);
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let lm: RegExpExecArray | null;
      let end = 0;
      while ((lm = re.exec(body))) {
        labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
        end = re.lastIndex;
        if (lm[3] === '') break;
      }
      assert.equal(end, body.length, `labels not fully parsed: ${body}`);
    }
    const v = m[3]!;
    out.samples.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

const find = (p: Parsed, name: string, labels: Record<string, string> = {}) =>
  p.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()))?.value;

describe('prometheus registry', () => {
  test('counters and gauges with labels, HELP and TYPE', () => {
    const r = new Registry();
    const c = r.counter('jobs_total', 'Jobs done.', ['kind']);
    const g = r.gauge('depth', 'Queue depth.');
    c.inc({ kind: 'a' });
    c.inc({ kind: 'a' }, 2);
    c.inc({ kind: 'b' });
    g.set({}, 7);
    g.dec({}, 2);
    const p = parse(r.render());
    assert.equal(p.type.get('jobs_total'), 'counter');
    assert.equal(p.type.get('depth'), 'gauge');
    assert.equal(p.help.get('jobs_total'), 'Jobs done.');
    assert.equal(find(p, 'jobs_total', { kind: 'a' }), 3);
    assert.equal(find(p, 'jobs_total', { kind: 'b' }), 1);
    assert.equal(find(p, 'depth'), 5);
  });

  test('label values and help text are escaped and round-trip', () => {
    const r = new Registry();
    const weird = 'a "quoted"\\path\nwith newline';
    r.counter('odd_total', 'Help with \\ backslash\nand newline.', ['path']).inc({ path: weird });
    const text = r.render();
    assert.ok(text.includes('path="a \\"quoted\\"\\\\path\\nwith newline"'), text);
    assert.equal(text.split('\n').filter((l) => l.startsWith('odd_total')).length, 1);
    const p = parse(text);
    assert.equal(p.samples[0]!.labels.path, weird);
    assert.equal(p.help.get('odd_total'), 'Help with \\ backslash\nand newline.');
  });

  test('histogram: cumulative buckets, +Inf, _sum, _count', () => {
    const r = new Registry();
    const h = r.histogram('lat_seconds', 'Latency.', [], [0.1, 1, 10]);
    for (const v of [0.05, 0.1, 0.5, 2, 20]) h.observe({}, v);
    const p = parse(r.render());
    assert.equal(p.type.get('lat_seconds'), 'histogram');
    assert.equal(find(p, 'lat_seconds_bucket', { le: '0.1' }), 2); // le is inclusive
    assert.equal(find(p, 'lat_seconds_bucket', { le: '1' }), 3);
    assert.equal(find(p, 'lat_seconds_bucket', { le: '10' }), 4);
    assert.equal(find(p, 'lat_seconds_bucket', { le: '+Inf' }), 5);
    assert.equal(find(p, 'lat_seconds_count'), 5);
    assert.ok(Math.abs(find(p, 'lat_seconds_sum')! - 22.65) < 1e-9);
  });

  test('misuse is refused with the metric named', () => {
    const r = new Registry();
    const c = r.counter('x_total', 'X.', ['kind']);
    assert.throws(() => c.inc({}), /x_total: missing label kind/);
    assert.throws(() => c.inc({ kind: 'a', other: 'b' }), /x_total: unknown label other/);
    assert.throws(() => c.inc({ kind: 'a' }, -1), /only goes up/);
    assert.throws(() => r.counter('x_total', 'again'), /registered twice/);
    assert.throws(() => r.gauge('bad-name', 'B.'), /not valid/);
    assert.throws(() => r.histogram('h', 'H.', ['le']), /label name "le"/);
    assert.throws(() => r.histogram('h2', 'H.', [], [1, 1]), /buckets must increase/);
  });

  test('collect hooks run before each render', () => {
    const r = new Registry();
    const g = r.gauge('n', 'N.');
    let calls = 0;
    r.onCollect(() => g.set({}, ++calls));
    r.render();
    assert.equal(find(parse(r.render()), 'n'), 2);
  });
});

describe('tier metrics', () => {
  test('a known workload renders exact values under the documented names', () => {
    const m = createTierMetrics();
    observeRecall(m, { bytes: 4096, seconds: 0.002 });
    observeRecall(m, { bytes: 1 << 20, seconds: 0.3 });
    observeRecall(m, { bytes: 0, seconds: 30.5, errorKind: 'Timeout' });
    m.migrations.inc({ action: 'release', outcome: 'ok' }, 3);
    m.migrations.inc({ action: 'release', outcome: 'busy' });
    m.tierRequestErrors.inc({ tier: 's3-cold' });
    m.queueDepth.set({ queue: 'recall' }, 2);
    setStateTotals(m, [
      { state: 'released', files: 3, bytes: 3000 },
      { state: 'resident', files: 10, bytes: 100 },
    ]);
    const p = parse(m.registry.render());
    assert.equal(find(p, 'tier_recalls_total'), 2);
    assert.equal(find(p, 'tier_recall_bytes_total'), 4096 + (1 << 20));
    assert.equal(find(p, 'tier_recall_errors_total', { kind: 'Timeout' }), 1);
    assert.equal(find(p, 'tier_recall_latency_seconds_count'), 3);
    assert.equal(find(p, 'tier_recall_latency_seconds_bucket', { le: '0.005' }), 1);
    assert.equal(find(p, 'tier_recall_latency_seconds_bucket', { le: '30' }), 2);
    assert.equal(find(p, 'tier_recall_latency_seconds_bucket', { le: '+Inf' }), 3);
    assert.equal(find(p, 'tier_migrations_total', { action: 'release', outcome: 'ok' }), 3);
    assert.equal(find(p, 'tier_migrations_total', { action: 'release', outcome: 'busy' }), 1);
    assert.equal(find(p, 'tier_tier_request_errors_total', { tier: 's3-cold' }), 1);
    assert.equal(find(p, 'tier_queue_depth', { queue: 'recall' }), 2);
    assert.equal(find(p, 'tier_bytes', { state: 'released' }), 3000);
    assert.equal(find(p, 'tier_bytes', { state: 'dirty' }), 0);
    assert.equal(find(p, 'tier_files', { state: 'resident' }), 10);
    for (const n of ['tier_recalls_total', 'tier_recall_latency_seconds', 'tier_bytes', 'tier_queue_depth']) assert.ok(p.help.has(n), n);
  });

  test('per tier and state: tier_tier_bytes/files; a tier no row names any more drops out', () => {
    const m = createTierMetrics();
    setTierTotals(m, [
      { tier: 'cold', state: 'released', files: 2, bytes: 2000 },
      { tier: 'nas', state: 'archived', files: 1, bytes: 5 },
    ]);
    let p = parse(m.registry.render());
    assert.equal(find(p, 'tier_tier_bytes', { tier: 'cold', state: 'released' }), 2000);
    assert.equal(find(p, 'tier_tier_files', { tier: 'nas', state: 'archived' }), 1);
    setTierTotals(m, [{ tier: 'cold', state: 'released', files: 1, bytes: 1000 }]);
    const text = m.registry.render();
    p = parse(text);
    assert.equal(find(p, 'tier_tier_bytes', { tier: 'cold', state: 'released' }), 1000);
    assert.doesNotMatch(text, /tier="nas"/);
  });
});
