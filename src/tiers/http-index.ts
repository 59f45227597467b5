// Directory index pages (nginx and Apache autoindex) -> entry names. Pure.
//
// Only relative links to direct children count: `name` (a file) or `name/` (a directory),
// percent-decoded to the name's bytes. Parent links, absolute URLs, query links (Apache's
// sort headers `?C=N;O=D`), fragments and anything with a '/' inside are ignored. Sizes
// and times on these pages are rounded (nginx: times to the minute; Apache: "1.2K"), so
// the tier asks each file's HEAD for exact ones.
export interface IndexEntry {
  name: string;
  dir: boolean;
}

const HREF = /<a\s[^>]*?href\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))/gi;

function unescapeHtml(s: string): string {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

export function parseIndex(html: string): IndexEntry[] {
  const out: IndexEntry[] = [];
  const seen = new Set<string>();
  for (const m of html.matchAll(HREF)) {
    let href = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? '');
    if (href === '' || href.startsWith('?') || href.startsWith('#') || href.startsWith('/')) continue;
    if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue; // http:, mailto:, ...
    href = href.replace(/^\.\//, '');
    const dir = href.endsWith('/');
    const raw = dir ? href.slice(0, -1) : href;
    if (raw === '' || raw.includes('/') || raw.includes('?') || raw.includes('#')) continue;
    let name: string;
    try {
      name = decodeURIComponent(raw);
    } catch {
      continue; // not valid percent-encoded UTF-8
    }
    if (name === '.' || name === '..' || name.includes('/') || name.includes('\0')) continue;
    const k = (dir ? 'd' : 'f') + name;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ name, dir });
  }
  return out;
}

/** A key's URL below the base URL (which ends in '/'): every segment percent-encoded. */
export function keyUrl(base: string, key: string): string {
  return base + key.split('/').map(encodeURIComponent).join('/');
}
