// Is one absolute path in a fileset? The same answer the scan gives by walking: under a
// root, no directory on the way pruned by an exclude, matched by an include and by no
// exclude. Pure, so `tier explain` can say why a file is not managed.
import { posix } from 'node:path';
import type { FilesetDecl } from '../dsl/ast.js';
import { globMatcher } from '../walk/glob.js';

export type Membership = { member: true; root: string; rel: string } | { member: false; reason: string };

export function filesetMembership(fs: FilesetDecl, absPath: string): Membership {
  const p = posix.normalize(absPath);
  const root = fs.roots
    .map((r) => posix.normalize(r).replace(/\/+$/, '') || '/')
    .filter((r) => p.startsWith(r === '/' ? '/' : r + '/'))
    .sort((a, b) => b.length - a.length)[0];
  if (root === undefined) return { member: false, reason: `not under any root (${fs.roots.join(', ')})` };
  const rel = p.slice(root === '/' ? 1 : root.length + 1);
  if (fs.exclude.length > 0) {
    const excluded = globMatcher(fs.exclude);
    const dirGlobs = fs.exclude.flatMap((g) => (g.endsWith('/**') ? [g, g.slice(0, -3)] : [g]));
    const pruned = globMatcher(dirGlobs);
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (pruned(dir)) return { member: false, reason: `directory ${dir} is excluded` };
    }
    if (excluded(rel)) return { member: false, reason: `${rel} matches an exclude` };
  }
  const include = fs.include.length === 1 && fs.include[0] === '**' ? [] : fs.include;
  if (include.length > 0 && !globMatcher(include)(rel)) return { member: false, reason: `${rel} matches no include` };
  return { member: true, root, rel };
}
