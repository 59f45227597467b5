// Glob matching for policies and filesets: picomatch with dotfiles matched (they are
// ordinary files to an admin) and the regex in dotAll mode, because picomatch's `.`
// would not match a newline and file names may contain one.
// A glob's leading and trailing literal text is checked before its regex (`**/*.tmp`: the
// string must end with `.tmp`): most names of a big tree fail that test, and the regex
// costs the walk several times a string compare per file. Only a necessary condition, so
// the answer is always the regex's.
import picomatch from 'picomatch';

const cache = new Map<string, RegExp>();

function regex(glob: string): RegExp {
  let re = cache.get(glob);
  if (!re) {
    const base = picomatch.makeRe(glob, { dot: true });
    re = new RegExp(base.source, base.flags.includes('s') ? base.flags : base.flags + 's');
    cache.set(glob, re);
  }
  return re;
}

// Characters picomatch never reads as anything but themselves.
const LITERAL_TAIL = /[A-Za-z0-9_.-]+$/;
const LITERAL_HEAD = /^[A-Za-z0-9_.\-/]+/;

/**
 * The literal text every match starts and ends with ('' when none is known). Not for a
 * negated glob (`!x`), nor one picomatch rewrites (`./x`); the regex allows one trailing
 * `/` after the tail and matches `a` for `a/**`, so the head's trailing slashes are dropped.
 */
export function literalEnds(glob: string): { head: string; tail: string } {
  if (glob.startsWith('!') || glob.startsWith('./') || glob.endsWith('/')) return { head: '', tail: '' };
  const tail = LITERAL_TAIL.exec(glob)?.[0] ?? '';
  const head = (LITERAL_HEAD.exec(glob)?.[0] ?? '').replace(/\/+$/, '');
  // A glob of literal text alone: the head says it all (the regex still decides).
  return tail === glob ? { head: glob, tail: '' } : { head, tail };
}

function one(glob: string): (s: string) => boolean {
  const r = regex(glob);
  const { head, tail } = literalEnds(glob);
  const tailSlash = tail + '/';
  if (head && tail) return (s) => s.startsWith(head) && (s.endsWith(tail) || s.endsWith(tailSlash)) && r.test(s);
  if (tail) return (s) => (s.endsWith(tail) || s.endsWith(tailSlash)) && r.test(s);
  if (head) return (s) => s.startsWith(head) && r.test(s);
  return (s) => r.test(s);
}

/** True when `s` matches any of the globs (none: false). */
export function globMatcher(globs: string | string[]): (s: string) => boolean {
  const ms = (Array.isArray(globs) ? globs : [globs]).map(one);
  if (ms.length === 1) return ms[0]!;
  return (s) => ms.some((m) => m(s));
}
