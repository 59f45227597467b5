// FAULT INJECTION, test only (loaded with `node --import` into the daemon, inherited by the
// worker through execArgv): while the file named by TIER_FAULT_HOLD_PUT exists, every
// LocalTier.put of a data object (not `.sums`) first takes one piece of its body (one pread
// of the engine's upload, under its lease), appends `put KEY` to `$TIER_FAULT_HOLD_PUT.log`,
// then waits until the file is gone or the engine aborts the put. This holds a release
// mid-upload, lease held, for as long as a test needs.
import { appendFileSync, existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalTier } from '../../src/tiers/local.js';

const flag = process.env.TIER_FAULT_HOLD_PUT;

if (flag) {
  const put = LocalTier.prototype.put;
  LocalTier.prototype.put = async function (this: LocalTier, key, body, size, meta, signal) {
    if (!existsSync(flag) || key.endsWith('.sums')) return put.call(this, key, body, size, meta, signal);
    const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const first = await it.next();
    appendFileSync(`${flag}.log`, `put ${key}\n`);
    while (existsSync(flag)) await sleep(20, undefined, { signal });
    const rest = (async function* () {
      if (!first.done) yield first.value;
      for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
    })();
    return put.call(this, key, Readable.from(rest), size, meta, signal);
  };
}
