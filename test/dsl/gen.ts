// Deterministic generators for the fuzz test: a seeded PRNG, valid random policies built
// from the grammar, and mutations of any text.

/** mulberry32: small, fast, good enough to spread test inputs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = ReturnType<typeof prng>;
export const int = (r: Rand, n: number) => Math.floor(r() * n);
export const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;

const SIZE_U = ['B', 'KB', 'MB', 'GB', 'TB', 'KiB', 'MiB', 'GiB', 'TiB'];
const DUR_U = ['s', 'min', 'h', 'd', 'w', 'y'];
// Also as people write them: a space before the unit, durations in words (issue 16).
const DUR_WORDS = ['seconds', 'second', 'sec', 'secs', 'minutes', 'minute', 'mins', 'min', 'hours', 'hour', 'hrs', 'hr', 'days', 'day', 'weeks', 'week', 'years', 'year'];
const size = (r: Rand) => `${1 + int(r, 999)}${r() < 0.25 ? ' ' : ''}${pick(r, SIZE_U)}`;
const dur = (r: Rand) => (r() < 0.25 ? `${1 + int(r, 99)} ${pick(r, [...DUR_WORDS, ...DUR_U])}` : `${1 + int(r, 99)}${pick(r, DUR_U)}`);
const list = (r: Rand, item: () => string) => `(${Array.from({ length: 1 + int(r, 3) }, item).join(', ')})`;
const IN = ['in', 'not in'];
const globs = ['**', '*.mkv', '**/*.log', 'a/{b,c}/**', '[abc]*.txt', 'projects/current/**', '?x*'];
const str = (r: Rand) => JSON.stringify(pick(r, globs));

function comparison(r: Rand): string {
  switch (int(r, 9)) {
    case 0:
      return `size ${pick(r, ['<', '<=', '>', '>=', '==', '!='])} ${size(r)}`;
    case 1:
      return `${pick(r, ['last_access', 'last_mod', 'last_change'])} ${pick(r, ['<', '>', '>='])} ${dur(r)}`;
    case 2:
      return `${pick(r, ['path', 'name'])} ${pick(r, ['~', '!~', '==', '!='])} ${str(r)}`;
    case 3:
      return `${pick(r, ['owner', 'group'])} ${pick(r, ['==', '!=', '~'])} "${pick(r, ['root', 'archive', 'adm*'])}"`;
    case 4:
      return `${pick(r, ['uid', 'gid'])} ${pick(r, ['==', '<', '>='])} ${int(r, 70000)}`;
    case 5:
      return `state ${pick(r, ['==', '!='])} ${pick(r, ['resident', 'archived', 'dirty', 'released', 'partial'])}`;
    case 6:
      return `pinned == ${pick(r, ['true', 'false'])}`;
    case 7:
      switch (int(r, 4)) {
        case 0:
          return `${pick(r, ['owner', 'group'])} ${pick(r, IN)} ${list(r, () => `"${pick(r, ['root', 'archive', 'alice', 'bob'])}"`)}`;
        case 1:
          return `${pick(r, ['path', 'name'])} ${pick(r, IN)} ${list(r, () => str(r))}`;
        case 2:
          return `${pick(r, ['uid', 'gid'])} ${pick(r, IN)} ${list(r, () => String(int(r, 70000)))}`;
        default:
          return `state ${pick(r, IN)} ${list(r, () => pick(r, ['resident', 'archived', 'dirty', 'released', 'partial']))}`;
      }
    default:
      return `size == 0`;
  }
}

export function expr(r: Rand, depth = 0): string {
  const k = depth > 3 ? 0 : int(r, 5);
  if (k <= 1) return comparison(r);
  if (k === 2) return `not ${expr(r, depth + 1)}`;
  if (k === 3) return `(${expr(r, depth + 1)} ${pick(r, ['and', 'or'])} ${expr(r, depth + 1)})`;
  return `${expr(r, depth + 1)} ${pick(r, ['and', 'or'])} ${expr(r, depth + 1)}`;
}

/** A random policy file that is valid by construction. */
export function validPolicy(r: Rand): string {
  const out: string[] = [];
  const tiers = Array.from({ length: 1 + int(r, 3) }, (_, i) => `t${i}`);
  for (const t of tiers) {
    const opts = [`chunk ${pick(r, ['1MiB', '4MiB', '8MB'])}`, `timeout ${1 + int(r, 60)}s`, `concurrency ${1 + int(r, 16)}`, `readahead ${size(r)}`, `bwlimit ${size(r)}`, `tpslimit ${1 + int(r, 100)}`].filter(() => r() < 0.5);
    if (r() < 0.5) out.push(`tier ${t} { local "/tiers/${t}" ${opts.join(' ')} }`);
    else {
      const s3 = [`endpoint "http://127.0.0.1:${7000 + int(r, 999)}"`, `region "us-east-1"`, `path_style ${pick(r, ['true', 'false'])}`, `checksum ${pick(r, ['when_required', 'when_supported'])}`, `storage_class "STANDARD"`, `profile "p"`];
      out.push(`tier ${t} {\n  s3 bucket "b${int(r, 9)}" prefix "p/"\n  ${s3.filter(() => r() < 0.5).join('\n  ')}\n  ${opts.join('  ')}\n}`);
    }
  }
  out.push(`fileset fs {\n  root "/srv/a"${r() < 0.5 ? ', "/srv/b"' : ''}\n  ${r() < 0.5 ? `exclude ${str(r)}, ${str(r)}` : ''}\n}`);
  const npol = 1 + int(r, 2);
  for (let p = 0; p < npol; p++) {
    const lines = [`policy p${p} on fs {`];
    if (r() < 0.5) lines.push(`  schedule "${pick(r, ['15 2 * * *', '*/5 * * * *', '0 0 1 * * *', '0 3 * * 1-5'])}"`);
    if (r() < 0.3) lines.push(`  timezone "${pick(r, ['UTC', 'Europe/Paris', 'America/New_York'])}"`);
    if (r() < 0.4) lines.push(`  when usage > ${51 + int(r, 49)}% until usage < ${int(r, 50)}%`);
    if (r() < 0.4) lines.push(`  order by ${pick(r, ['last_access', 'last_mod', 'last_change', 'size'])} ${pick(r, ['asc', 'desc', ''])}`);
    if (r() < 0.4) lines.push(`  limit ${1 + int(r, 99999)} files`);
    if (r() < 0.3) lines.push(`  limit ${size(r)}`);
    for (const o of ['check_interval', 'cooldown', 'keep_deleted']) if (r() < 0.2) lines.push(`  ${o} ${dur(r)}`);
    const nrules = 1 + int(r, 5);
    for (let i = 0; i < nrules; i++) {
      const last = i === nrules - 1 && r() < 0.3;
      const action = pick(r, ['keep', 'pin', 'unpin', 'recall', `archive to ${pick(r, tiers)}`, `release to ${pick(r, tiers)}`]);
      lines.push(`  rule r${i}: ${last ? pick(r, ['true', '*']) : expr(r)} -> ${action}`);
    }
    lines.push('}');
    out.push(lines.join('\n'));
  }
  if (r() < 0.3) out.push(`recall { whole_file_for "cp", "rsync" }`);
  return out.join('\n\n') + '\n';
}

const VOCAB = [
  'tier', 'fileset', 'policy', 'recall', 'rule', 'on', 'to', 'and', 'or', 'not', '(', ')', '{', '}', ':', '->', ',', '==',
  '<', '~', '=', '"', '"x', '#', '\n', ' ', '4MiB', '30d', '85%', '12', '5m', 'size', 'keep', 'release', 'local', 's3',
  'when', 'until', 'order', 'by', 'limit', 'files', '*', 'true', '\u0000', '\ufffd', 'é', '\r\n', '\\',
  'in', 'not in', ' in (', '1 GB', '30 days', ' days', ' gb', '2 months', ' gigs', 'owner in ("a", "b")', ' weeks',
];

/** A size or duration outside strings (rules and options; not `limit`): where a unit slip can go. */
export function quantities(text: string): { at: number; len: number; number: string }[] {
  const out: { at: number; len: number; number: string }[] = [];
  const re = /(?<![\w.])(\d+)[ ]?(?:KiB|MiB|GiB|TiB|KB|MB|GB|TB|B|min|seconds?|secs?|minutes?|mins|hours?|hrs?|days?|weeks?|years?|s|h|d|w|y)(?![\w%])/g;
  let lineStart = 0;
  for (const line of text.split('\n')) {
    if (!line.trimStart().startsWith('limit ')) {
      for (const m of line.matchAll(re)) {
        const quotes = line.slice(0, m.index).split('"').length - 1;
        if (quotes % 2 === 0) out.push({ at: lineStart + m.index!, len: m[0].length, number: m[1]! });
      }
    }
    lineStart += line.length + 1;
  }
  return out;
}

/** One random edit: delete, insert a token, duplicate, truncate, or replace a character. */
export function mutate(r: Rand, text: string): string {
  const at = int(r, text.length + 1);
  switch (int(r, 6)) {
    case 0:
      return text.slice(0, at) + text.slice(at + 1 + int(r, 20));
    case 1:
      return text.slice(0, at) + pick(r, VOCAB) + text.slice(at);
    case 2: {
      const len = int(r, 60);
      return text.slice(0, at) + text.slice(at, at + len) + text.slice(at);
    }
    case 3:
      return text.slice(0, at);
    case 4:
      return text.slice(0, at) + String.fromCharCode(int(r, 0x250)) + text.slice(at + 1);
    default: {
      const b = int(r, text.length + 1);
      return text.slice(0, Math.min(at, b)) + text.slice(Math.max(at, b)) + text.slice(Math.min(at, b), Math.max(at, b));
    }
  }
}

export function randomBytes(r: Rand, n: number): string {
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = int(r, 256);
  return r() < 0.5 ? bytes.toString('utf8') : bytes.toString('latin1');
}
