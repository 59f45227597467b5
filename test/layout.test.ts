// The layout of src/ as docs/architecture.md draws it: no import cycle between files, none
// between folders, the CLI imported by nobody, the supervisor (src/daemon) importing nothing
// of the worker, and no folder past ~20 files. Static: reads the import lines, runs nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const walk = (d: string): string[] =>
  readdirSync(d).flatMap((n) => {
    const p = join(d, n);
    return statSync(p).isDirectory() ? walk(p) : n.endsWith('.ts') ? [p] : [];
  });
const files = walk(SRC).map((f) => relative(SRC, f));
const graph = new Map(
  files.map((f) => {
    const text = readFileSync(join(SRC, f), 'utf8');
    const specs = [...text.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)].map((m) => m[1]!);
    return [f, specs.map((s) => relative(SRC, resolve(SRC, dirname(f), s.replace(/\.js$/, '.ts'))))];
  }),
);
const folder = (f: string) => dirname(f);
/** The top folder (cli/run -> cli): the CLI's own folders may import one another. */
const area = (f: string) => f.split('/')[0]!;

/** Known cycles, each to be deleted when fixed: none left. */
const ALLOWED_FILE_CYCLES: string[] = [];
const ALLOWED_FOLDER_CYCLES: string[] = [];
const ALLOWED_BIG = new Set<string>();

/** Strongly connected components with more than one member (Tarjan). */
function cycles(g: Map<string, string[]>): string[] {
  let n = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[] = [];
  const visit = (v: string) => {
    index.set(v, n);
    low.set(v, n++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) out.push(c.sort().join(' '));
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return out;
}

test('no import cycle between files of src/', () => {
  assert.ok(files.length > 100);
  assert.deepEqual(cycles(graph).filter((c) => !ALLOWED_FILE_CYCLES.includes(c)), []);
});

test('no import cycle between the top folders of src/', () => {
  const fg = new Map<string, string[]>();
  for (const [f, deps] of graph) {
    const from = area(f);
    fg.set(from, [...(fg.get(from) ?? []), ...deps.map(area).filter((d) => d !== from)]);
  }
  assert.deepEqual(cycles(fg).filter((c) => !ALLOWED_FOLDER_CYCLES.includes(c)), []);
});

/** docs/architecture.md's layers: a folder imports only from lower layers (and itself). */
const LAYER: Record<string, number> = {
  'log.ts': 0, kernel: 0, dsl: 0,
  tiers: 1, record: 1,
  chunks: 2, walk: 2,
  engine: 3,
  recall: 4, changes: 4, schedule: 4,
  daemon: 5, gc: 5, reconcile: 5, import: 5, reports: 5, metrics: 5,
  cli: 6, worker: 6,
};

test('imports go down the layers of docs/architecture.md', () => {
  for (const [f, deps] of graph) {
    const from = area(f);
    assert.ok(from in LAYER, `src/${from} has no layer: add it here and to docs/architecture.md`);
    for (const d of deps) {
      const to = area(d);
      if (to === from || ALLOWED_FOLDER_CYCLES.includes([from, to].sort().join(' '))) continue;
      assert.ok(LAYER[to]! < LAYER[from]!, `${f} (layer ${LAYER[from]}) imports ${d} (layer ${LAYER[to]})`);
    }
  }
});

test('the CLI is imported by nobody; the supervisor imports nothing of the worker', () => {
  for (const [f, deps] of graph) {
    for (const d of deps) {
      if (!f.startsWith('cli/')) assert.ok(!d.startsWith('cli/'), `${f} imports ${d}`);
      if (f.startsWith('daemon/')) assert.ok(!d.startsWith('worker/'), `${f} imports ${d}`);
    }
  }
});

test('no folder of src/ holds more than 20 files', () => {
  const count = new Map<string, number>();
  for (const f of files) count.set(folder(f), (count.get(folder(f)) ?? 0) + 1);
  for (const [d, n] of count) if (!ALLOWED_BIG.has(d)) assert.ok(n <= 20, `src/${d}: ${n} files`);
});
