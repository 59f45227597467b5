// One ranged GET of a tier object, bounded by the tier timeout even if the tier ignores its
// AbortSignal (chunks and sums alike: copy-chunk.ts, sums-fetch.ts).
import { readInto, TierError, type Progress, type Tier } from '../tiers/tier.js';

/** tier.get bounded by the tier timeout even if the tier ignores its signal. */
export function getWithTimeout(tier: Tier, key: string, offset: number, length: number, timeoutMs: number, expect?: string): Promise<Buffer> {
  return bounded(tier, key, timeoutMs, (signal) => tier.get(key, { offset, length }, signal, expect));
}

/**
 * readInto (tier.ts) bounded the same way: `length` bytes at `offset` into `dst`. On a
 * timeout the tier may still be writing into `dst`: the caller must not reuse it. With
 * `progress` (a long GET read in pieces: copy-chunk.ts streamDenseRun) the bound is per
 * stretch without a byte: `timeoutMs` with no progress fails it, and the whole GET gets
 * `timeoutMs` per RUN_BOUND bytes (as many runs of that size would), so a GET of 16 MiB
 * on a slow link is not held to the time of 2 MiB, and a stalled one still fails in time.
 */
export function getIntoWithTimeout(tier: Tier, key: string, offset: number, length: number, dst: Buffer, timeoutMs: number, expect?: string, progress?: Progress, stop?: AbortSignal): Promise<number> {
  if (!progress) return bounded(tier, key, timeoutMs, (signal) => readInto(tier, key, { offset, length }, dst, signal, expect), stop);
  const total = timeoutMs * Math.max(1, Math.ceil(length / RUN_BOUND));
  return bounded(
    tier,
    key,
    timeoutMs,
    (signal, alive) =>
      readInto(tier, key, { offset, length }, dst, signal, expect, (n) => {
        alive();
        progress(n);
      }),
    stop,
    total,
  );
}

/** Bytes one `timeoutMs` covers in a long GET: a read-ahead run's size (recall/fast-path.ts RUN_BYTES). */
export const RUN_BOUND = 2 * 1024 * 1024;

/**
 * `call` under a timer of `timeoutMs` (restarted by `alive()`, never past `totalMs` in all);
 * `stop`: the caller gives up (the call is aborted).
 */
async function bounded<T>(tier: Tier, key: string, timeoutMs: number, call: (signal: AbortSignal, alive: () => void) => Promise<T>, stop?: AbortSignal, totalMs = timeoutMs): Promise<T> {
  const ac = new AbortController();
  const onStop = () => ac.abort();
  stop?.addEventListener('abort', onStop, { once: true });
  const until = Date.now() + totalMs;
  let last = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const fire = (why: string) => {
      ac.abort();
      reject(new TierError('Timeout', 'get', tier.name, key, why));
    };
    const check = () => {
      const now = Date.now();
      if (now >= until && totalMs > timeoutMs) return fire(`not done within ${totalMs} ms`);
      if (now - last >= timeoutMs) return fire(totalMs > timeoutMs ? `no byte for ${timeoutMs} ms` : `no answer within ${timeoutMs} ms`);
      timer = setTimeout(check, Math.max(1, Math.min(timeoutMs - (now - last), until - now)));
    };
    timer = setTimeout(check, timeoutMs);
  });
  const alive = () => {
    last = Date.now();
  };
  try {
    return await Promise.race([call(ac.signal, alive), timeout]);
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener('abort', onStop);
  }
}
