// The tar command-line reading of opener.ts (pure): which operands are the archive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tarArchives } from '../../src/recall/opener.js';

test('tarArchives: old-style clusters, short clusters, long options', () => {
  assert.deepEqual(tarArchives(['tar', 'tvf', 'a.tar']), ['a.tar']);
  assert.deepEqual(tarArchives(['tar', 'cbf', '20', 'a.tar', 'x']), ['a.tar'], 'b takes the first argument');
  assert.deepEqual(tarArchives(['tar', 'cf', 'a.tar', 'm1', 'm2']), ['a.tar']);
  assert.deepEqual(tarArchives(['tar', '-tvf', 'a.tar']), ['a.tar']);
  assert.deepEqual(tarArchives(['tar', '-tvfa.tar']), ['a.tar']);
  assert.deepEqual(tarArchives(['tar', '-t', '-f', 'a.tar', '-v']), ['a.tar']);
  assert.deepEqual(tarArchives(['tar', '-C', '-fdir', '-c', 'x']), [], '-C takes the next argument: -fdir is a directory');
  assert.deepEqual(tarArchives(['tar', '-xzf', 'b.tgz', '-C', 'out']), ['b.tgz']);
  assert.deepEqual(tarArchives(['tar', '--list', '--file=c.tar']), ['c.tar']);
  assert.deepEqual(tarArchives(['tar', '--list', '--file', 'c.tar']), ['c.tar']);
  assert.deepEqual(tarArchives(['tar', '-c', 'm1', '--', '-f', 'x']), [], 'after --, names are members');
  assert.deepEqual(tarArchives(['tar', '-cf', '-', 'm1']), ['-']);
  assert.deepEqual(tarArchives(['tar', '-c', 'm1']), []);
  assert.deepEqual(tarArchives(['tar']), []);
  assert.deepEqual(tarArchives(['tar', '-M', '-f', 'v1.tar', '-f', 'v2.tar', '-t']), ['v1.tar', 'v2.tar']);
});
