// One ranged GET of a tier object, bounded by the tier timeout even if the tier ignores its
// AbortSignal (chunks and sums alike: copy-chunk.ts, sums-fetch.ts).
import { TierError, type Tier } from '../tiers/tier.js';

/** tier.get bounded by the tier timeout even if the tier ignores its signal. */
export async function getWithTimeout(tier: Tier, key: string, offset: number, length: number, timeoutMs: number, expect?: string): Promise<Buffer> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort();
      reject(new TierError('Timeout', 'get', tier.name, key, `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([tier.get(key, { offset, length }, ac.signal, expect), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
