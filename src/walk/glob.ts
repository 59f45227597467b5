// Glob matching for policies and filesets: picomatch with dotfiles matched (they are
// ordinary files to an admin) and the regex in dotAll mode, because picomatch's `.`
// would not match a newline and file names may contain one.
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

/** True when `s` matches any of the globs (none: false). */
export function globMatcher(globs: string | string[]): (s: string) => boolean {
  const res = (Array.isArray(globs) ? globs : [globs]).map(regex);
  if (res.length === 1) {
    const r = res[0]!;
    return (s) => r.test(s);
  }
  return (s) => res.some((r) => r.test(s));
}
