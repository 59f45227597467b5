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
 * `progress` (a long GET read in pieces: copy-chunk.ts streamDenseRun) each RUN_BOUND piece
 * gets a timeout of its own: the GET fails once `timeoutMs` passes without a byte, or when
 * `now - t0 > timeoutMs * (1 + floor(have / RUN_BOUND))`, so a GET of 16 MiB on a slow link
 * is not held to the time of 2 MiB, and a reader waiting on any piece waits at most about
 * one timeout past the piece before (a byte now and then does not keep a GET alive).
 */
export function getIntoWithTimeout(tier: Tier, key: string, offset: number, length: number, dst: Buffer, timeoutMs: number, expect?: string, progress?: Progress, stop?: AbortSignal): Promise<number> {
  if (!progress) return bounded(tier, key, timeoutMs, (signal) => readInto(tier, key, { offset, length }, dst, signal, expect), stop);
  return bounded(
    tier,
    key,
    timeoutMs,
    (signal, alive) =>
      readInto(tier, key, { offset, length }, dst, signal, expect, (n) => {
        alive(n);
        progress(n);
      }),
    stop,
  );
}

/** Bytes one `timeoutMs` covers in a long GET: a read-ahead run's size (recall/fast-path.ts RUN_BYTES). */
export const RUN_BOUND = 2 * 1024 * 1024;

/**
 * `call` under a timer of `timeoutMs`, restarted by `alive(have)` (bytes so far), and never
 * past `timeoutMs` per RUN_BOUND bytes had from the start; `stop`: the caller gives up.
 */
async function bounded<T>(tier: Tier, key: string, timeoutMs: number, call: (signal: AbortSignal, alive: (have: number) => void) => Promise<T>, stop?: AbortSignal): Promise<T> {
  const ac = new AbortController();
  const onStop = () => ac.abort();
  stop?.addEventListener('abort', onStop, { once: true });
  const t0 = Date.now();
  let last = t0;
  let have = 0;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const fire = (why: string) => {
      ac.abort();
      reject(new TierError('Timeout', 'get', tier.name, key, why));
    };
    const check = () => {
      const now = Date.now();
      const due = t0 + timeoutMs * (1 + Math.floor(have / RUN_BOUND));
      if (now - last >= timeoutMs) return fire(have > 0 ? `no byte for ${timeoutMs} ms` : `no answer within ${timeoutMs} ms`);
      if (now >= due) return fire(`${have} bytes in ${now - t0} ms: under ${RUN_BOUND} bytes per ${timeoutMs} ms`);
      timer = setTimeout(check, Math.max(1, Math.min(timeoutMs - (now - last), due - now)));
    };
    timer = setTimeout(check, timeoutMs);
  });
  const alive = (n: number) => {
    last = Date.now();
    have = Math.max(have, n);
  };
  try {
    return await Promise.race([call(ac.signal, alive), timeout]);
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener('abort', onStop);
  }
}
