// globMatcher checks a glob's literal head and tail before its regex: only a shortcut, so
// every answer must be picomatch's own (the regex alone), over globs of every kind and
// paths that nearly match.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import picomatch from 'picomatch';
import { globMatcher, literalEnds } from '../../src/walk/glob.js';

const GLOBS = [
  '**/*.tmp', '*.log', 'cold/**', 'cold', 'cold/*.dat', 'a/**/b', 'a/**/*.tmp', '.cache/**', '**/.cache/**', '**/*.part',
  '*.{tmp,part}', 'f?.log', 'x[0-9].dat', '!*.tmp', './a/*', 'a/', '**', '*', 'a/+(b|c).tmp', 'a/@(b).tmp', 'a/!(b).tmp',
  'foo\\.tmp', '*.tm\\*', 'logs/**/*.log', '**/sub', 'd1/f1.dat', '/abs/**', 'a-b_c.d/**', '**/*.log/', 'ünï/*.txt',
];
const PATHS = [
  'x.tmp', 'a/x.tmp', 'a/x.tmp/', 'a/b/c.tmp', 'x.tmpx', '.tmp', 'a/.tmp', 'x.log', 'a/x.log', 'cold', 'cold/', 'cold/x', 'cold/a/b',
  'coldx/y', 'hot/cold/x', 'cold/f.dat', 'a/b', 'a/x/b', 'a/x/y/b', 'ab', 'a/b.tmp', '.cache/x', 'a/.cache/x', 'x.part', 'f1.log',
  'fx.log', 'x1.dat', 'x.tmp\n', 'new\nline.tmp', 'foo.tmp', 'fooxtmp', 'x.tm*', 'logs/a/b.log', 'logs/b.log', 'q/sub', 'sub',
  'd1/f1.dat', '/abs/x', 'a-b_c.d/e', 'a/c.tmp', 'a/d.tmp', 'y.log/', 'ünï/a.txt', '', '/', 'a//b',
];

test('a glob matches exactly what its regex matches (the literal ends are only a shortcut)', () => {
  let matched = 0;
  for (const g of GLOBS) {
    const base = picomatch.makeRe(g, { dot: true });
    const re = new RegExp(base.source, base.flags.includes('s') ? base.flags : base.flags + 's');
    const m = globMatcher(g);
    for (const p of PATHS) {
      assert.equal(m(p), re.test(p), `glob ${JSON.stringify(g)} on ${JSON.stringify(p)}`);
      if (re.test(p)) matched++;
    }
  }
  assert.ok(matched > 40, 'the corpus has matches, not only misses');
});

test('literal ends: known for the common shapes, none where picomatch reads more into the glob', () => {
  assert.deepEqual(literalEnds('**/*.tmp'), { head: '', tail: '.tmp' });
  assert.deepEqual(literalEnds('cold/**'), { head: 'cold', tail: '' });
  assert.deepEqual(literalEnds('logs/**/*.log'), { head: 'logs', tail: '.log' });
  assert.deepEqual(literalEnds('!*.tmp'), { head: '', tail: '' });
  assert.deepEqual(literalEnds('./a/*'), { head: '', tail: '' });
  assert.deepEqual(literalEnds('*.{tmp,part}'), { head: '', tail: '' });
});
