// OpenSSL's one-shot SHA256() called through koffi by address, for the hasher thread
// (chunks/hasher.ts): 16 KiB units (32768 per 512 MiB) of bytes in cache at 1.02x the CPU
// of one hash over the same bytes, where a createHash().update().digest() per unit costs
// 1.18x, crypto.hash 1.11x, and koffi with buffer arguments, not addresses, 1.05x.
// The one exception to "only kernel/libc.ts imports koffi": the source below requires it in the hasher's thread.
// (That thread runs CommonJS source: libc.ts, TypeScript, cannot load there; libc.ts
// koffiPath() tells it where koffi lies. This module itself imports nothing.)
// Rules:
// - the library is the process's own OpenSSL (node exports its libcrypto's symbols for
//   addons; a node linked to a shared libcrypto has it loaded), else libcrypto.so.3, else
//   none: the thread then hashes with node:crypto, the same digests;
// - a binding is used only after it hashed a probe exactly as node:crypto does;
// - every address is taken from a typed array over memory that does not move (a
//   SharedArrayBuffer or Buffer backing store) and held by the caller for the call; every
//   piece length is a safe non-negative integer and no piece reaches past its view (both
//   checked before the first call), so no call reads or writes outside memory the thread holds.

/**
 * CommonJS source defining `loadNativeSha256(koffiPath, createHash)`: null, or
 * `{ name, pieces(view, lens, out) }` writing the SHA-256 of consecutive pieces of `view`
 * (lengths `lens`, from its start) to `out`, 32 bytes each.
 */
export const NATIVE_SHA256_SOURCE = String.raw`
function loadNativeSha256(koffiPath, createHash) {
  let koffi;
  try {
    koffi = require(koffiPath);
  } catch {
    return null;
  }
  for (const name of [null, 'libcrypto.so.3']) {
    let SHA256;
    try {
      SHA256 = koffi.load(name).func('uintptr_t SHA256(uintptr_t d, size_t n, uintptr_t md)');
    } catch {
      continue;
    }
    const pieces = (view, lens, out) => {
      let total = 0;
      for (let k = 0; k < lens.length; k++) {
        // NaN, a negative or a fraction would reach SHA256() as a wild size_t (NaN crashed the process).
        if (!Number.isSafeInteger(lens[k]) || lens[k] < 0) throw new RangeError('sha256: piece ' + k + ' has length ' + lens[k]);
        total += lens[k];
      }
      if (total > view.length || out.length < 32 * lens.length) throw new RangeError('sha256: pieces reach past their buffers');
      if (total === 0 || view.length === 0) {
        for (let k = 0; k < lens.length; k++) createHash('sha256').digest().copy(out, 32 * k);
        return;
      }
      const a = Number(koffi.address(view));
      const o = Number(koffi.address(out));
      for (let k = 0, at = 0; k < lens.length; at += lens[k], k++) SHA256(a + at, lens[k], o + 32 * k);
    };
    try {
      const probe = Buffer.alloc(40000);
      for (let i = 0; i < probe.length; i++) probe[i] = (i * 131) & 255;
      const out = Buffer.alloc(64);
      pieces(probe, [16384, 23616], out);
      const want = Buffer.concat([createHash('sha256').update(probe.subarray(0, 16384)).digest(), createHash('sha256').update(probe.subarray(16384)).digest()]);
      if (out.equals(want)) return { name: name === null ? 'OpenSSL SHA256 (node)' : 'OpenSSL SHA256 (' + name + ')', pieces };
    } catch {
      /* next */
    }
  }
  return null;
}
`;
