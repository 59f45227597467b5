// FAULT INJECTION, test only (loaded with `node --import` into the daemon, inherited by the
// worker through execArgv): while the file named by TIER_FAULT_HANG exists, every
// LocalTier read blocks, and its start is appended to `$TIER_FAULT_HANG.log`. This holds
// recalls in flight for as long as a test needs, e.g. to SIGKILL the worker mid-recall.
import { appendFileSync, existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalTier } from '../../src/tiers/local.js';

const flag = process.env.TIER_FAULT_HANG;

async function hang(what: string, signal?: AbortSignal): Promise<void> {
  if (!flag || !existsSync(flag)) return;
  appendFileSync(`${flag}.log`, `${process.pid} ${what}\n`);
  while (existsSync(flag)) await sleep(20, undefined, { signal });
}

if (flag) {
  const proto = LocalTier.prototype;
  const get = proto.get;
  const getStream = proto.getStream;
  const getInto = proto.getInto;
  proto.get = async function (this: LocalTier, key, range, signal) {
    await hang(`get ${key}`, signal);
    return get.call(this, key, range, signal);
  };
  proto.getStream = async function (this: LocalTier, key, range, signal) {
    await hang(`getStream ${key}`, signal);
    return getStream.call(this, key, range, signal);
  };
  proto.getInto = async function (this: LocalTier, key, range, dst, signal, expect) {
    await hang(`getInto ${key}`, signal);
    return getInto.call(this, key, range, dst, signal, expect);
  };
}
