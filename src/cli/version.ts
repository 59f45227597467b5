// `tier --version`: the package's version (package.json, two levels up from both
// src/cli/ and dist/cli/) and the Node.js that runs it, since native modules and the
// fanotify facts the daemon relies on depend on both.
import { readFileSync } from 'node:fs';

export function versionText(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `tier ${pkg.version} (node ${process.version})`;
}
