// A reader that holds a file open across a daemon stop (issue 12, item 4): opens FILE,
// prints "open", waits for a line on stdin, then reads the whole file and compares it with
// ORIGINAL. Prints one JSON line: {ok, zeros, err}: zeros = some 4 KiB block read as
// zeros where the original has data.
import { openSync, readSync, readFileSync } from 'node:fs';
const [file, original] = process.argv.slice(2);
const want = readFileSync(original);
const fd = openSync(file, 'r');
console.log('open');
process.stdin.once('data', () => {
  const got = Buffer.alloc(want.length);
  let err = null;
  let n = 0;
  try {
    while (n < want.length) {
      const r = readSync(fd, got, n, want.length - n, n);
      if (r === 0) break;
      n += r;
    }
  } catch (e) {
    err = e.code ?? String(e);
  }
  let zeros = false;
  for (let o = 0; o + 4096 <= n && !zeros; o += 4096) {
    const b = got.subarray(o, o + 4096);
    if (b.every((x) => x === 0) && !want.subarray(o, o + 4096).every((x) => x === 0)) zeros = true;
  }
  console.log(JSON.stringify({ ok: err === null && n === want.length && got.equals(want), zeros, err }));
  process.exit(0);
});
