// A reader that keeps reading while something happens to the daemon: opens FILE afresh
// for each read of a range (STEP bytes at offsets cycling through OFFSETS, MiB), compares
// with the same range of ORIGINAL, until its stdin closes. Any EIO or wrong byte is
// counted (never retried). Prints one JSON line: {reads, eio, mismatch, errors}.
import { closeSync, openSync, readSync } from 'node:fs';
const [file, original, offsetsArg, stepArg] = process.argv.slice(2);
const offsets = offsetsArg.split(',').map((m) => Number(m) * 1024 * 1024);
const step = Number(stepArg ?? 8192);
const orig = openSync(original, 'r');
let stop = false;
process.stdin.on('end', () => (stop = true)).resume();
const r = { reads: 0, eio: 0, mismatch: 0, errors: [] };
for (let i = 0; !stop; i++) {
  const off = offsets[i % offsets.length] + ((i * 4096) % (256 * 1024));
  const want = Buffer.alloc(step);
  const got = Buffer.alloc(step);
  readSync(orig, want, 0, step, off);
  let fd = -1;
  try {
    fd = openSync(file, 'r');
    let n = 0;
    while (n < step) {
      const k = readSync(fd, got, n, step - n, off + n);
      if (k === 0) break;
      n += k;
    }
    r.reads++;
    if (n !== step || !got.equals(want)) r.mismatch++;
  } catch (e) {
    if (e.code === 'EIO') r.eio++;
    else r.errors.push(e.code ?? String(e));
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  await new Promise((res) => setTimeout(res, 20));
}
console.log(JSON.stringify(r));
