// Hand-written inline SVG charts for the report page (pure: data in, markup out).
// Rules: no script, no external reference (no href/src to anything but `#id` in the same
// page), every bar carries its number as text beside it and its figures as data-
// attributes, and series differ by pattern and shape as well as colour, so the page reads
// in greyscale and on a printer. Every text passes through esc().

export function esc(s: string | number): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** data-* attributes from a record (keys camelCase -> kebab-case). */
export function dataAttrs(d: Record<string, string | number>): string {
  return Object.entries(d)
    .map(([k, v]) => ` data-${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}="${esc(v)}"`)
    .join('');
}

/** Fill patterns: each is told apart by its lines, not only its colour. */
export const PATTERNS = ['p-solid', 'p-diag', 'p-dots', 'p-cross', 'p-horiz', 'p-vert'] as const;
export type PatternId = (typeof PATTERNS)[number];

/** The <defs> every chart refers to; put once in the page (an invisible svg). */
export function patternDefs(): string {
  const pat = (id: string, color: string, body: string) =>
    `<pattern id="${id}" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="${color}" fill-opacity="0.25"/>${body}</pattern>`;
  return (
    `<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>` +
    `<pattern id="p-solid" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="#2b5c8a"/></pattern>` +
    pat('p-diag', '#c0392b', '<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke="#c0392b" stroke-width="2"/>') +
    pat('p-dots', '#27864a', '<circle cx="4" cy="4" r="1.8" fill="#27864a"/>') +
    pat('p-cross', '#8e44ad', '<path d="M0,0 l8,8 M8,0 l-8,8" stroke="#8e44ad" stroke-width="1.5"/>') +
    pat('p-horiz', '#b9770e', '<path d="M0,4 h8" stroke="#b9770e" stroke-width="2"/>') +
    pat('p-vert', '#555', '<path d="M4,0 v8" stroke="#555" stroke-width="2"/>') +
    `</defs></svg>`
  );
}

export interface BarItem {
  label: string;
  value: number;
  /** The number printed beside the bar (e.g. "3 files, 1.20 GiB"). */
  text: string;
  pattern?: PatternId;
  data: Record<string, string | number>;
}

const W = 460;

/** Horizontal bars, one row per item: label | bar | number. */
export function hbars(title: string, items: BarItem[], opts: { figure: string; labelWidth?: number }): string {
  const lw = opts.labelWidth ?? 110;
  const row = 22;
  const bw = W - lw - 150;
  const max = Math.max(0, ...items.map((i) => i.value));
  const h = Math.max(1, items.length) * row + 6;
  const rows = items.map((it, n) => {
    const y = 3 + n * row;
    const w = max > 0 ? Math.max(it.value > 0 ? 1 : 0, (it.value / max) * bw) : 0;
    const pat = it.pattern ?? PATTERNS[n % PATTERNS.length]!;
    return (
      `<g class="bar"${dataAttrs(it.data)}>` +
      `<text x="${lw - 6}" y="${y + 15}" text-anchor="end">${esc(clip(it.label, 18))}</text>` +
      `<rect x="${lw}" y="${y + 2}" width="${w.toFixed(1)}" height="${row - 6}" fill="url(#${pat})" stroke="#222" stroke-width="0.6"/>` +
      `<text x="${(lw + w + 6).toFixed(1)}" y="${y + 15}" class="num">${esc(it.text)}</text></g>`
    );
  });
  const empty = items.length === 0 ? `<text x="${lw}" y="16" class="none">none</text>` : '';
  return svg(title, W, h, rows.join('') + empty, opts.figure);
}

/** Two bars per group (e.g. moved and freed per run), told apart by pattern and a legend. */
export function pairedBars(
  title: string,
  groups: { label: string; a: number; b: number; aText: string; bText: string; data: Record<string, string | number> }[],
  legend: [string, string],
  figure: string,
): string {
  const lw = 150;
  const bw = W - lw - 110;
  const max = Math.max(0, ...groups.flatMap((g) => [g.a, g.b]));
  const gh = 34;
  const h = 22 + Math.max(1, groups.length) * gh;
  const len = (v: number) => (max > 0 ? Math.max(v > 0 ? 1 : 0, (v / max) * bw) : 0);
  const key =
    `<rect x="${lw}" y="3" width="14" height="10" fill="url(#p-diag)" stroke="#222" stroke-width="0.6"/><text x="${lw + 18}" y="12">${esc(legend[0])}</text>` +
    `<rect x="${lw + 110}" y="3" width="14" height="10" fill="url(#p-solid)" stroke="#222" stroke-width="0.6"/><text x="${lw + 128}" y="12">${esc(legend[1])}</text>`;
  const rows = groups.map((g, n) => {
    const y = 22 + n * gh;
    const wa = len(g.a);
    const wb = len(g.b);
    return (
      `<g class="pair"${dataAttrs(g.data)}>` +
      `<text x="${lw - 6}" y="${y + 19}" text-anchor="end">${esc(clip(g.label, 24))}</text>` +
      `<rect x="${lw}" y="${y + 2}" width="${wa.toFixed(1)}" height="13" fill="url(#p-diag)" stroke="#222" stroke-width="0.6"/>` +
      `<text x="${(lw + wa + 5).toFixed(1)}" y="${y + 13}" class="num">${esc(g.aText)}</text>` +
      `<rect x="${lw}" y="${y + 16}" width="${wb.toFixed(1)}" height="13" fill="url(#p-solid)" stroke="#222" stroke-width="0.6"/>` +
      `<text x="${(lw + wb + 5).toFixed(1)}" y="${y + 27}" class="num">${esc(g.bText)}</text></g>`
    );
  });
  const empty = groups.length === 0 ? `<text x="${lw}" y="38" class="none">none yet</text>` : '';
  return svg(title, W, h, key + rows.join('') + empty, figure);
}

export interface TimePoint {
  at: number;
  count: number;
  errors: number;
  avgMs: number;
  maxMs: number;
  data: Record<string, string | number>;
}

/** Columns of counts per time bucket (errors stacked, cross-hatched) and the average latency as a line of squares on a second axis. */
export function timeline(title: string, pts: TimePoint[], figure: string, fmtTime: (t: number) => string): string {
  const w = 940;
  const h = 230;
  const L = 50;
  const R = 60;
  const T = 24;
  const B = 40;
  const pw = w - L - R;
  const ph = h - T - B;
  // Headroom differs so a column's count label and its latency square rarely meet.
  const maxN = Math.max(1, ...pts.map((p) => p.count + p.errors)) * 1.1;
  const maxMs = Math.max(1, ...pts.map((p) => p.avgMs)) * 1.4;
  const step = pts.length ? pw / pts.length : pw;
  const cw = Math.min(28, Math.max(1, step * 0.7));
  const yN = (v: number) => T + ph - (v / maxN) * ph;
  const yMs = (v: number) => T + ph - (v / maxMs) * ph;
  const parts: string[] = [
    `<line x1="${L}" y1="${T + ph}" x2="${L + pw}" y2="${T + ph}" stroke="#222"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}" stroke="#222"/>`,
    `<line x1="${L + pw}" y1="${T}" x2="${L + pw}" y2="${T + ph}" stroke="#222" stroke-dasharray="3 2"/>`,
    `<text x="${L - 4}" y="${T + 4}" text-anchor="end">${Math.round(maxN)}</text><text x="${L - 4}" y="${T + ph}" text-anchor="end">0</text>`,
    `<text x="${L - 4}" y="${T - 10}" text-anchor="end">recalls</text>`,
    `<text x="${L + pw + 4}" y="${T + 4}">${fmtMs(maxMs)}</text><text x="${L + pw + 4}" y="${T + ph}">0 ms</text>`,
    `<text x="${L + pw + 4}" y="${T - 10}">avg latency</text>`,
  ];
  const line: string[] = [];
  pts.forEach((p, i) => {
    const x = L + i * step + (step - cw) / 2;
    const ok = `<rect x="${x.toFixed(1)}" y="${yN(p.count).toFixed(1)}" width="${cw.toFixed(1)}" height="${(T + ph - yN(p.count)).toFixed(1)}" fill="url(#p-solid)"/>`;
    const err = p.errors
      ? `<rect x="${x.toFixed(1)}" y="${yN(p.count + p.errors).toFixed(1)}" width="${cw.toFixed(1)}" height="${(yN(p.count) - yN(p.count + p.errors)).toFixed(1)}" fill="url(#p-cross)" stroke="#222" stroke-width="0.5"/>`
      : '';
    const n = p.count + p.errors ? `<text x="${(x + cw / 2).toFixed(1)}" y="${(yN(p.count + p.errors) - 3).toFixed(1)}" text-anchor="middle" class="small">${p.count + p.errors}</text>` : '';
    parts.push(`<g class="point"${dataAttrs(p.data)}>${ok}${err}${n}</g>`);
    if (p.count + p.errors) line.push(`${(x + cw / 2).toFixed(1)},${yMs(p.avgMs).toFixed(1)}`);
  });
  if (line.length > 1) parts.push(`<polyline points="${line.join(' ')}" fill="none" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5 3"/>`);
  for (const xy of line) {
    const [x, y] = xy.split(',').map(Number) as [number, number];
    parts.push(`<rect x="${x - 3}" y="${y - 3}" width="6" height="6" fill="#fff" stroke="#c0392b" stroke-width="1.5"/>`);
  }
  if (pts.length) {
    parts.push(`<text x="${L}" y="${T + ph + 16}">${esc(fmtTime(pts[0]!.at))}</text>`);
    parts.push(`<text x="${L + pw}" y="${T + ph + 16}" text-anchor="end">${esc(fmtTime(pts[pts.length - 1]!.at))}</text>`);
  } else parts.push(`<text x="${L + 10}" y="${T + ph / 2}" class="none">no recalls logged</text>`);
  parts.push(
    `<rect x="${L}" y="${h - 14}" width="14" height="10" fill="url(#p-solid)"/><text x="${L + 18}" y="${h - 5}">recalls</text>` +
      `<rect x="${L + 90}" y="${h - 14}" width="14" height="10" fill="url(#p-cross)" stroke="#222" stroke-width="0.5"/><text x="${L + 108}" y="${h - 5}">failed</text>` +
      `<rect x="${L + 175}" y="${h - 12}" width="6" height="6" fill="#fff" stroke="#c0392b" stroke-width="1.5"/><text x="${L + 187}" y="${h - 5}">average latency (right axis)</text>`,
  );
  return svg(title, w, h, parts.join(''), figure);
}

/** A filesystem's usage as one bar from 0 to 100 % with its watermarks as labelled lines. */
export function usageBar(title: string, percent: number, text: string, marks: { label: string; at: number; dash: string }[], data: Record<string, string | number>, figure: string): string {
  const L = 10;
  const UW = 700;
  const bw = UW - 20;
  const x = (p: number) => L + (Math.min(100, Math.max(0, p)) / 100) * bw;
  const parts = [
    `<text x="${L}" y="14" class="num">${esc(text)}</text>`,
    `<rect x="${L}" y="22" width="${bw}" height="22" fill="#fff" stroke="#222"/>`,
    `<rect x="${L}" y="22" width="${(x(percent) - L).toFixed(1)}" height="22" fill="url(#p-diag)"/>`,
    `<text x="${L}" y="56" class="small">0%</text><text x="${L + bw}" y="14" text-anchor="end" class="small">100%</text>`,
  ];
  marks.forEach((m, i) => {
    // Labels hang off their line towards the middle, one row each, so they never overlap.
    const mx = x(m.at);
    const anchor = m.at > 50 ? 'end' : 'start';
    const tx = anchor === 'end' ? mx - 3 : mx + 3;
    const ty = 70 + 12 * i;
    parts.push(
      `<line x1="${mx.toFixed(1)}" y1="18" x2="${mx.toFixed(1)}" y2="${ty - 3}" stroke="#000" stroke-width="${i % 2 ? 1 : 2}" stroke-dasharray="${m.dash}"/>` +
        `<text x="${tx.toFixed(1)}" y="${ty}" text-anchor="${anchor}" class="small">${esc(m.label)}</text>`,
    );
  });
  return svg(title, UW, 74 + 12 * marks.length, `<g class="usage"${dataAttrs(data)}>${parts.join('')}</g>`, figure);
}

function svg(title: string, w: number, h: number, body: string, figure: string): string {
  return `<svg class="chart" data-figure="${esc(figure)}" role="img" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><title>${esc(title)}</title>${body}</svg>`;
}

function clip(s: string, n: number): string {
  return s.length <= n ? s : '…' + s.slice(s.length - n + 1);
}

export function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s` : `${ms >= 10 ? ms.toFixed(0) : ms.toFixed(1)} ms`;
}
