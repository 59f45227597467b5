// `backing "DIR"` in a fileset: parsed, printed, and checked (absolute, one root, neither
// inside the other), each error at its exact line:col.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy } from '../../src/dsl/index.js';
import { marked } from './marks.js';

const HEAD = 'tier nas { local "/t" }\n';
const TAIL = '\npolicy p on f { rule a: true -> keep }\n';

function diags(snippet: string) {
  const { text, at } = marked(HEAD + snippet + TAIL);
  const r = parsePolicy(text, 'p.hsmpolicy');
  return { r, at, list: r.diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.severity}[${d.code}] ${d.message}`) };
}

describe('fileset backing', () => {
  test('parsed beside root; a trailing / is dropped', () => {
    const { r, list } = diags('fileset f {\n  root "/srv/media"\n  backing "/srv/.tier/media/"\n}');
    assert.deepEqual(list, []);
    const f = r.policy!.filesets[0]!;
    assert.deepEqual(f.roots, ['/srv/media']);
    assert.equal(f.backing?.path, '/srv/.tier/media');
    assert.equal(f.backing?.span.line, 4);
  });

  test('absent: no backing (the fileset behaves as before)', () => {
    const { r } = diags('fileset f { root "/srv/media" }');
    assert.equal(r.policy!.filesets[0]!.backing, undefined);
  });

  const BAD: [string, string, string][] = [
    ['relative-root', 'fileset f { root "/srv/media" backing ⟨"srv/b" }', 'backing "srv/b" is not an absolute path'],
    ['invalid-backing', 'fileset f { root "/srv/media" backing ⟨"/srv/media" }', 'is the root itself'],
    ['invalid-backing', 'fileset f { root "/srv/media" backing ⟨"/srv/media/.b" }', 'is inside root'],
    ['invalid-backing', 'fileset f { root "/srv/b/media" backing ⟨"/srv/b" }', 'root "/srv/b/media" is inside backing'],
    ['invalid-backing', 'fileset f { root "/srv/media" backing ⟨"/" }', 'is inside backing'],
    ['invalid-backing', 'fileset f { root "/a", "/b" backing ⟨"/c" }', 'needs exactly one root'],
    ['duplicate-option', 'fileset f { root "/a" backing "/b" ⟨backing "/c" }', ''],
    ['type-mismatch', 'fileset f { root "/a" backing ⟨b }', 'quotes'],
  ];
  for (const [code, snippet, fragment] of BAD)
    test(`${code}: ${snippet.replace('⟨', '')}`, () => {
      const { r, at, list } = diags(snippet);
      const hit = r.diagnostics.find((d) => d.code === code && `${d.span.line}:${d.span.col}` === at[0]);
      assert.ok(hit, `no ${code} at ${at[0]}; got:\n${list.join('\n')}`);
      assert.equal(hit.severity, 'error');
      assert.ok(`${hit.message} ${hit.hint ?? ''}`.includes(fragment), hit.message);
    });

  test('a sibling whose name starts like the root is not inside it', () => {
    assert.deepEqual(diags('fileset f { root "/srv/media" backing "/srv/media-fs" }').list, []);
  });
});
