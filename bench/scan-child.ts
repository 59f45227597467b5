// Child process of benchmark 6: scan + evaluate one tree with the engine's library (the
// same scanFileset/evaluate `tier apply` runs, from dist/), nothing kept per file. Prints one JSON
// line: files, matched, ms (scan + evaluate, process start excluded), peak RSS. With
// `scan-only` the files are counted without evaluating (to split the time).
//   node --import tsx bench/scan-child.ts ROOT [scan-only]
// The built modules (bench/run.sh builds): under tsx, the scan's walk thread would first
// compile the TypeScript sources it imports, and that start-up is not the scan's.
const dist = (m: string) => new URL(`../dist/${m}`, import.meta.url).href;
const { parsePolicy } = (await import(dist('dsl/index.js'))) as typeof import('../src/dsl/index.js');
const { evaluate } = (await import(dist('engine/evaluate.js'))) as typeof import('../src/engine/evaluate.js');
const { scanFileset } = (await import(dist('engine/scan.js'))) as typeof import('../src/engine/scan.js');

const root = process.argv[2];
const scanOnly = process.argv[3] === 'scan-only';
if (!root) {
  process.stderr.write('usage: scan-child.ts ROOT\n');
  process.exit(2);
}
const text =
  `tier nas { local "/nonexistent-bench-tier" }\n` +
  `fileset tree { root "${root}" exclude "**/*.tmp" }\n` +
  `policy p on tree {\n` +
  `  rule small: size < 1KiB and last_access > 1d -> keep\n` +
  `  rule logs:  name ~ "*.log" and last_mod > 7d -> archive to nas\n` +
  `  rule old:   last_access > 30d or path ~ "cold/**" -> release to nas\n` +
  `}\n`;
const parsed = parsePolicy(text, 'bench.hsmpolicy');
if (!parsed.policy) throw new Error(`bench policy: ${JSON.stringify(parsed.diagnostics)}`);
const pf = parsed.policy;
const fs = pf.filesets[0]!;
const policy = pf.policies[0]!;

const t0 = process.hrtime.bigint();
const now = Date.now();
let files = 0;
let matched = 0;
for await (const f of scanFileset(fs)) {
  files++;
  if (!scanOnly && evaluate(policy, f, now)) matched++;
}
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
process.stdout.write(JSON.stringify({ files, matched, ms, maxRssKiB: process.resourceUsage().maxRSS }) + '\n');
