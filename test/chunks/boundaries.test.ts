// Chunk I/O (fetch, verify, resident map, ranges) lives in src/chunks, which the engine and
// the recall service both import: the engine imports nothing from src/recall, and chunks
// import neither side (only the record's format, engine/state-record.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';

const SRC = new URL('../../src/', import.meta.url);
const imports = (dir: string, f: string) =>
  [...readFileSync(new URL(`${dir}/${f}`, SRC), 'utf8').matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]!);
const tsFiles = (dir: string) => readdirSync(new URL(`${dir}/`, SRC)).filter((f) => f.endsWith('.ts'));

test('src/engine imports nothing from src/recall', () => {
  for (const f of tsFiles('engine')) {
    for (const spec of imports('engine', f)) assert.ok(!spec.startsWith('../recall/'), `engine/${f} imports ${spec}`);
  }
});

test('src/chunks imports neither src/recall nor the engine (but its record format)', () => {
  for (const f of tsFiles('chunks')) {
    for (const spec of imports('chunks', f)) {
      assert.ok(!spec.startsWith('../recall/'), `chunks/${f} imports ${spec}`);
      if (spec.startsWith('../engine/')) assert.equal(spec, '../engine/state-record.js', `chunks/${f} imports ${spec}`);
    }
  }
});
