// A reader process for the crash test: preads [offset, offset+len) of FILE and compares
// with the same range of ORIGINAL (a copy kept on another filesystem). Retries after EIO
// until the bytes come back right (at most TRIES times, default 2000); any wrong byte (zeros over a hole) ends it at once.
// Prints one JSON line: {eio, ok, mismatch}.
import { openSync, readSync, closeSync } from 'node:fs';
const [file, original, offStr, lenStr, triesStr] = process.argv.slice(2);
const tries = Number(triesStr ?? 2000);
const off = Number(offStr);
const len = Number(lenStr);
const want = Buffer.alloc(len);
const o = openSync(original, 'r');
readSync(o, want, 0, len, off);
closeSync(o);
let eio = 0;
for (let attempt = 0; attempt < tries; attempt++) {
  let fd = -1;
  const got = Buffer.alloc(len);
  try {
    // The open fails with EIO too while no worker serves (FAN_OPEN_PERM answered EIO).
    fd = openSync(file, 'r');
    let n = 0;
    while (n < len) {
      const r = readSync(fd, got, n, len - n, off + n);
      if (r === 0) break;
      n += r;
    }
    const ok = n === len && got.equals(want);
    console.log(JSON.stringify({ eio, ok, mismatch: !ok }));
    process.exit(ok ? 0 : 3);
  } catch (e) {
    if (e.code !== 'EIO') throw e;
    eio++;
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
console.log(JSON.stringify({ eio, ok: false, mismatch: false }));
process.exit(4);
