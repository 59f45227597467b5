// The .hsmpolicy lexer. A keyword gives way to Identifier when the word goes on
// (longer_alt), so `tiering` is one identifier, not `tier` + `ing`. Quantities carry their
// unit in the token (4MiB, 30d, 85%, and with a space: `1 GB`, `30 days`); a number followed
// by letters that are no unit (`5m`, `3days`, `2 months`) becomes a BadQuantity token so the
// user gets one "unknown unit" instead of a cascade of syntax errors. Spaces and tabs may
// separate a number from its unit, never a line break.
import { createToken, Lexer, type TokenType } from './cst.js';

/** Comparison operators, one category so the parser takes any of them. */
export const CmpOp = createToken({ name: 'CmpOp', pattern: Lexer.NA, label: 'a comparison operator' });
/** Keywords that start a `key value, value...` setting inside a block. */
export const OptionKey = createToken({ name: 'OptionKey', pattern: Lexer.NA, label: 'an option' });
/** Literal values an option or comparison can take. */
export const Literal = createToken({ name: 'Literal', pattern: Lexer.NA, label: 'a value' });
/** Where a name goes: identifiers and keywords alike (`tier local`, `owner == root`). */
export const Name = createToken({ name: 'Name', pattern: Lexer.NA, label: 'a name' });
/** The right side of a comparison: any literal, or a keyword read as a bare word. */
export const Value = createToken({ name: 'Value', pattern: Lexer.NA, label: 'a value' });
/** Names; also a Literal for bare words such as `released`, `when_required`, `files`. */
export const Identifier = createToken({
  name: 'Identifier',
  pattern: /[A-Za-z_][A-Za-z0-9_]*/,
  label: 'a name',
  categories: [Literal, Name, Value],
});

const kw = (word: string, categories: TokenType[] = [], upper = false): TokenType =>
  createToken({
    name: `Kw_${word}`,
    // `upper`: GPFS writes AND, OR, NOT, IN; lexed as the keyword so the rule parses on, and
    // index.ts reports the case once.
    pattern: new RegExp(upper ? `${word}|${word.toUpperCase()}` : word),
    longer_alt: Identifier,
    label: `'${word}'`,
    categories: [...categories, Value, ...(word === 'true' || word === 'false' ? [] : [Name])],
  });

// Declarations: index.ts cuts the token stream into one segment per declaration at these.
export const Tier = kw('tier', []);
export const Fileset = kw('fileset', []);
export const Policy = kw('policy', []);
export const Recall = kw('recall', []);

export const Rule = kw('rule');
export const On = kw('on');
export const To = kw('to');
export const And = kw('and', [], true);
export const Or = kw('or', [], true);
export const Not = kw('not', [], true);
/** `owner in ("alice", "bob")`, `uid not in (0, 1)`. */
export const In = kw('in', [], true);
export const True = kw('true', [Literal]);
export const False = kw('false', [Literal]);

const OPT = [OptionKey];

// Tier options.
export const Local = kw('local', OPT);
export const S3 = kw('s3', OPT);
export const Http = kw('http', OPT);
export const Bucket = kw('bucket', OPT);
export const Prefix = kw('prefix', OPT);
export const Endpoint = kw('endpoint', OPT);
export const Region = kw('region', OPT);
export const StorageClass = kw('storage_class', OPT);
export const Profile = kw('profile', OPT);
export const PathStyle = kw('path_style', OPT);
export const Checksum = kw('checksum', OPT);
export const Chunk = kw('chunk', OPT);
export const Readahead = kw('readahead', OPT);
export const Timeout = kw('timeout', OPT);
export const Concurrency = kw('concurrency', OPT);
export const Bwlimit = kw('bwlimit', OPT);
export const Tpslimit = kw('tpslimit', OPT);

// Fileset options.
export const Root = kw('root', OPT);
export const Backing = kw('backing', OPT);
export const Include = kw('include', OPT);
export const Exclude = kw('exclude', OPT);

// Policy options.
export const Schedule = kw('schedule', OPT);
export const Timezone = kw('timezone', OPT);
export const When = kw('when');
export const Until = kw('until');
export const Order = kw('order');
export const By = kw('by');
export const Limit = kw('limit');
export const CheckInterval = kw('check_interval', OPT);
export const Cooldown = kw('cooldown', OPT);
export const KeepDeleted = kw('keep_deleted', OPT);

// Recall block.
export const WholeFileFor = kw('whole_file_for', OPT);

const NUM = String.raw`-?\d+(?:\.\d+)?`;
/** Duration words, written after a space: `30 days`, `1 year` (values.ts maps them). */
const DURATION_WORDS = ['seconds', 'second', 'secs', 'sec', 'minutes', 'minute', 'mins', 'min', 'hours', 'hour', 'hrs', 'hr', 'days', 'day', 'weeks', 'week', 'years', 'year', 's', 'h', 'd', 'w', 'y'];
const END = String.raw`(?![A-Za-z0-9_%])`;
export const Percent = createToken({
  name: 'Percent',
  pattern: new RegExp(`${NUM}%`),
  label: 'a percentage',
  categories: [Literal, Value],
});
const SP = '[ \\t]';
export const Size = createToken({
  name: 'Size',
  pattern: new RegExp(`${NUM}${SP}*(?:KiB|MiB|GiB|TiB|KB|MB|GB|TB|B)${END}`),
  label: 'a size',
  categories: [Literal, Value],
});
export const Duration = createToken({
  name: 'Duration',
  // Symbols touch or follow a space (`30d`, `30 d`); words follow a space (`30 days`).
  pattern: new RegExp(`${NUM}(?:(?:min|s|h|d|w|y)|${SP}+(?:${DURATION_WORDS.join('|')}))${END}`),
  label: 'a duration',
  categories: [Literal, Value],
});
/** Unit-like words after a space that are no unit: `1 gb`, `2 months`, `5 m` (case-insensitive). */
const UNIT_SLIPS = ['k', 'kb', 'mb', 'gb', 'tb', 'pb', 'kib', 'mib', 'gib', 'tib', 'pib', 'b', 'bytes?', 'm', 'mo', 'mos', 'mons?', 'months?', 'ms', 'msecs?', 'millis', 'milliseconds?', 'secs?', 'seconds?', 'mins?', 'minutes?', 'h', 'hrs?', 'hours?', 'd', 'days?', 'w', 'wks?', 'weeks?', 'y', 'yrs?', 'years?', 'kilobytes?', 'megabytes?', 'gigabytes?', 'terabytes?'];
export const BadQuantity = createToken({
  name: 'BadQuantity',
  pattern: new RegExp(`${NUM}(?:[A-Za-z_][A-Za-z0-9_]*|${SP}+(?:${UNIT_SLIPS.join('|')})${END})`, 'i'),
  label: 'a value',
  categories: [Literal, Value],
});
export const NumberLit = createToken({
  name: 'Number',
  pattern: new RegExp(`${NUM}${END}`),
  label: 'a number',
  categories: [Literal, Value],
});
export const StringLit = createToken({
  name: 'String',
  pattern: /"(?:[^"\\\n\r]|\\[^\n\r])*"/,
  label: 'a string',
  categories: [Literal, Value],
});
/** A string with no closing quote on its line: lexed anyway so parsing goes on. */
export const UnterminatedString = createToken({
  name: 'UnterminatedString',
  pattern: /"(?:[^"\\\n\r]|\\[^\n\r])*\\?/,
  label: 'a string',
  categories: [Literal, Value],
});

const punct = (name: string, pattern: string, categories: TokenType[] = []): TokenType =>
  createToken({ name, pattern: new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), label: `'${pattern}'`, categories });

export const Arrow = punct('Arrow', '->');
export const Eq = punct('Eq', '==', [CmpOp]);
export const Ne = punct('Ne', '!=', [CmpOp]);
export const NotMatch = punct('NotMatch', '!~', [CmpOp]);
export const Le = punct('Le', '<=', [CmpOp]);
export const Ge = punct('Ge', '>=', [CmpOp]);
export const Lt = punct('Lt', '<', [CmpOp]);
export const Gt = punct('Gt', '>', [CmpOp]);
export const Match = punct('Match', '~', [CmpOp]);
/** A lone `=`: accepted as a comparison so the validator can say "use ==". */
export const SingleEq = punct('SingleEq', '=', [CmpOp]);
export const Colon = punct('Colon', ':');
export const Comma = punct('Comma', ',');
export const LCurly = punct('LCurly', '{');
export const RCurly = punct('RCurly', '}');
export const LParen = punct('LParen', '(');
export const RParen = punct('RParen', ')');
export const Star = punct('Star', '*');

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\f\v]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n\r]*/, group: Lexer.SKIPPED });

const keywords: TokenType[] = [
  Tier, Fileset, Policy, Recall, Rule, On, To, And, Or, Not, In, True, False,
  Local, S3, Http, Bucket, Prefix, Endpoint, Region, StorageClass, Profile, PathStyle, Checksum,
  Chunk, Readahead, Timeout, Concurrency, Bwlimit, Tpslimit, Root, Backing, Include, Exclude, Schedule, Timezone,
  When, Until, Order, By, Limit, CheckInterval, Cooldown, KeepDeleted, WholeFileFor,
].sort((a, b) => b.name.length - a.name.length); // by word: Kw_order before Kw_or

// Order matters: the first pattern that matches wins, so longer forms come first.
export const allTokens: TokenType[] = [
  WhiteSpace,
  Comment,
  StringLit,
  UnterminatedString,
  Percent,
  Size,
  Duration,
  BadQuantity, // before Number: `2 months` is one token, not a number and a name
  NumberLit,
  Arrow,
  Eq,
  Ne,
  NotMatch,
  Le,
  Ge,
  Lt,
  Gt,
  Match,
  SingleEq,
  Colon,
  Comma,
  LCurly,
  RCurly,
  LParen,
  RParen,
  Star,
  // Keywords, longest first so no keyword hides a longer one (`or` / `order`).
  ...keywords,
  Identifier,
  CmpOp,
  Literal,
  OptionKey,
  Name,
  Value,
];

export const policyLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false });
