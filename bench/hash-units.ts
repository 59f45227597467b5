// Micro-benchmark of the verify hash (issue 11 goal 3): SHA-256 of 16 KiB units through the
// hasher (src/chunks/hasher.ts sha256Units, 2 MiB runs, up to --depth runs in flight as the
// recall's semaphore allows), against baselines measured in the same run: `openssl speed`
// at 16 KiB and a plain loop (one createHash over the same bytes, on this thread). Prints the
// CPU of each thread (/proc/self/task/*/schedstat: ns on a CPU) and the ratios.
//   node --import tsx bench/hash-units.ts [--mib 512] [--depth 8] [--rounds 2] [--threads 2] [--node-crypto]
// Loads nothing but the hasher (no better-sqlite3): runs under Node 20 and Node 24 alike.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { configureHasherForTests, giveRunBuf, hasherInfo, sha256Units, takeRunBuf } from '../src/chunks/hasher.js';

const MiB = 1024 * 1024;
const UNIT = 16 * 1024;
const RUN = 2 * MiB;

const arg = (k: string, d: number): number => {
  const i = process.argv.indexOf(k);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const total = arg('--mib', 512) * MiB;
const depth = arg('--depth', 8);
const rounds = arg('--rounds', 2);
// --threads N: at most N hasher threads; --node-crypto: node:crypto's one-shot hash per unit, not OpenSSL by address.
configureHasherForTests({ threads: arg('--threads', 2), native: !process.argv.includes('--node-crypto') });

/** ns on a CPU per thread id. */
function threads(): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      m.set(t, Number(readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      /* gone */
    }
  }
  return m;
}

function opensslMBs(): number | null {
  const r = spawnSync('openssl', ['speed', '-evp', 'sha256', '-bytes', String(UNIT), '-seconds', '1'], { encoding: 'utf8' });
  const m = /^sha256\s+([\d.]+)k/m.exec(r.stdout ?? '');
  return m ? (Number(m[1]) * 1000) / 1e6 : null;
}

/** Source bytes, larger than the caches, copied into each run as a tier read would. */
const src = Buffer.alloc(64 * MiB);
for (let i = 0; i < src.length; i += 4) src.writeUInt32LE((i * 2654435761) >>> 0, i);

async function throughHasher(): Promise<{ wallMs: number; mainMs: number; others: number[] }> {
  const before = threads();
  const t0 = performance.now();
  const inFlight = new Set<Promise<void>>();
  for (let at = 0; at < total; at += RUN) {
    const len = Math.min(RUN, total - at);
    const buf = takeRunBuf(len);
    src.copy(buf, 0, at % src.length, (at % src.length) + len);
    const p: Promise<void> = sha256Units(buf, UNIT).then((sums) => {
      if (sums.length !== 32 * Math.ceil(len / UNIT)) throw new Error('short sums');
      giveRunBuf(buf);
      inFlight.delete(p);
    });
    inFlight.add(p);
    if (inFlight.size >= depth) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const wallMs = performance.now() - t0;
  const after = threads();
  const d = [...after].map(([t, ns]) => [t, (ns - (before.get(t) ?? 0)) / 1e6] as const);
  const mainMs = d.find(([t]) => t === String(process.pid))?.[1] ?? 0;
  const others = d.filter(([t, ms]) => t !== String(process.pid) && ms > 20).map(([, ms]) => ms).sort((a, b) => b - a);
  return { wallMs, mainMs, others };
}

function plainLoop(): number {
  const before = threads().get(String(process.pid))!;
  const h = createHash('sha256');
  for (let at = 0; at < total; at += RUN) h.update(src.subarray(at % src.length, (at % src.length) + RUN));
  h.digest();
  return (threads().get(String(process.pid))! - before) / 1e6;
}

const fmt = (ms: number) => `${ms.toFixed(0)} ms (${((total / 1e6 / ms) * 1000).toFixed(0)} MB/s)`;
console.log(`node ${process.version}, ${total / MiB} MiB in ${UNIT / 1024} KiB units, ${RUN / MiB} MiB runs, depth ${depth}; load ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
await throughHasher(); // warm: threads started, slabs pooled
const huge = /AnonHugePages:\s+(\d+)/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1];
console.log(`hasher: ${JSON.stringify(hasherInfo())}; huge pages in this process: ${huge ?? '?'} kB`);
for (let r = 1; r <= rounds; r++) {
  const os = opensslMBs();
  const loop = plainLoop();
  const h = await throughHasher();
  const hashMs = h.others.reduce((a, b) => a + b, 0);
  const raw = os ? (total / 1e6 / os) * 1000 : loop;
  console.log(
    `round ${r}: openssl speed ${os ? `${os.toFixed(0)} MB/s = ${fmt(raw)}` : 'n/a'}; plain loop ${fmt(loop)}; ` +
      `hasher wall ${h.wallMs.toFixed(0)} ms, main thread ${h.mainMs.toFixed(0)} ms, hasher threads ${h.others.map((x) => x.toFixed(0)).join(' + ')} ms = ${fmt(hashMs)}; ` +
      `hasher CPU / openssl ${(hashMs / raw).toFixed(2)}, / plain loop ${(hashMs / loop).toFixed(2)}; load ${readFileSync('/proc/loadavg', 'utf8').trim().split(' ')[0]}`,
  );
}
