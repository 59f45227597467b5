// `tier --version` as a real process (the built bin/tier.js, as installed): the version
// from package.json and the Node.js running it, on stdout, exit 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

for (const args of [['bin/tier.js'], ['--import', 'tsx', 'src/cli/main.ts']]) {
  test(`${args.at(-1)} --version and -V print the package and node versions`, () => {
    for (const flag of ['--version', '-V']) {
      const r = spawnSync(process.execPath, [...args, flag], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `tier ${pkg.version} (node ${process.version})\n`);
      assert.equal(r.stderr, '');
    }
  });
}
