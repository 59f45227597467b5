// One ranged GET of a tier object, bounded by the tier timeout even if the tier ignores its
// AbortSignal (chunks and sums alike: copy-chunk.ts, sums-fetch.ts).
import { readInto, TierError, type Progress, type Tier } from '../tiers/tier.js';

/** tier.get bounded by the tier timeout even if the tier ignores its signal. */
export function getWithTimeout(tier: Tier, key: string, offset: number, length: number, timeoutMs: number, expect?: string): Promise<Buffer> {
  return bounded(tier, key, timeoutMs, (signal) => tier.get(key, { offset, length }, signal, expect));
}

/**
 * readInto (tier.ts) bounded the same way: `length` bytes at `offset` into `dst`. On a
 * timeout the tier may still be writing into `dst`: the caller must not reuse it.
 */
export function getIntoWithTimeout(tier: Tier, key: string, offset: number, length: number, dst: Buffer, timeoutMs: number, expect?: string, progress?: Progress, stop?: AbortSignal): Promise<number> {
  return bounded(tier, key, timeoutMs, (signal) => readInto(tier, key, { offset, length }, dst, signal, expect, progress), stop);
}

/** `stop`: the caller gives up (the call fails with the tier's Aborted). */
async function bounded<T>(tier: Tier, key: string, timeoutMs: number, call: (signal: AbortSignal) => Promise<T>, stop?: AbortSignal): Promise<T> {
  const ac = new AbortController();
  const onStop = () => ac.abort();
  stop?.addEventListener('abort', onStop, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort();
      reject(new TierError('Timeout', 'get', tier.name, key, `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([call(ac.signal), timeout]);
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener('abort', onStop);
  }
}
