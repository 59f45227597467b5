// The DSL stays pure: only load.ts touches the filesystem, nothing imports koffi or the
// AWS SDK, and the modules form no import cycle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';

const DIR = new URL('../../src/dsl/', import.meta.url);
const files = readdirSync(DIR).filter((f) => f.endsWith('.ts'));
const imports = (f: string) => [...readFileSync(new URL(f, DIR), 'utf8').matchAll(/^import\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]!);

test('only load.ts imports node:fs; nothing imports koffi, @aws-sdk or other layers', () => {
  for (const f of files) {
    for (const spec of imports(f)) {
      if (/^(node:)?fs(\/promises)?$/.test(spec)) assert.equal(f, 'load.ts', `${f} imports ${spec}`);
      assert.ok(!spec.startsWith('koffi') && !spec.startsWith('@aws-sdk'), `${f} imports ${spec}`);
      assert.ok(!spec.startsWith('../'), `${f} reaches outside src/dsl: ${spec}`);
    }
  }
});

test('no import cycles inside src/dsl', () => {
  const graph = new Map(files.map((f) => [f, imports(f).filter((s) => s.startsWith('./')).map((s) => s.slice(2).replace(/\.js$/, '.ts'))]));
  const state = new Map<string, 'open' | 'done'>();
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    assert.notEqual(state.get(f), 'open', `cycle: ${[...path, f].join(' -> ')}`);
    state.set(f, 'open');
    for (const g of graph.get(f) ?? []) visit(g, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.ok(files.length >= 10);
});

test('modules stay small (under 260 lines)', () => {
  for (const f of files) {
    const lines = readFileSync(new URL(f, DIR), 'utf8').split('\n').length;
    assert.ok(lines < 260, `${f}: ${lines} lines`);
  }
});
