#!/usr/bin/env bash
# Installs what tier and its tests need on a fresh Debian machine (as root). Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for cmd in radosgw:radosgw ceph-mon:ceph-mon ceph-osd:ceph-osd mkfs.xfs:xfsprogs mkfs.ext4:e2fsprogs \
           getfattr:attr curl:curl rclone:rclone fusermount3:fuse3 losetup:mount gcc:gcc \
           nginx:nginx-light qemu-img:qemu-utils fio:fio sqlite3:sqlite3 rsync:rsync git:git chromium:chromium; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Native modules (better-sqlite3) build against the running Node's headers: those beside
# its binary (Node's tarballs and the registry's node@N ship bin/ and include/node), else
# the system's (/usr/include/node), whichever has this version. Node 20 and 24 both work.
node_version=$(node -p process.versions.node)
headers_of() {
  awk '/^#define NODE_(MAJOR|MINOR|PATCH)_VERSION /{v[$2]=$3} END{print v["NODE_MAJOR_VERSION"]"."v["NODE_MINOR_VERSION"]"."v["NODE_PATCH_VERSION"]}' "$1/include/node/node_version.h" 2>/dev/null
}
for d in "${npm_config_nodedir:-}" "$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")" /usr /usr/local; do
  if [ -n "$d" ] && [ "$(headers_of "$d")" = "$node_version" ]; then export npm_config_nodedir="$d"; break; fi
done
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# node_modules built under another Node (its ABI): take this ABI's build kept from an earlier
# run, else rebuild the native module for this Node (a minute or two) and keep it, so that
# switching between Node 20 and 24 (.ci/run does) rebuilds once per ABI. koffi needs nothing:
# its prebuilt module is Node-API, the same for both.
sqlite_ok() { node -e "new (require('better-sqlite3'))(':memory:').close()" 2>/dev/null; }
built=node_modules/better-sqlite3/build/Release/better_sqlite3.node
kept=node_modules/.tier-native/better-sqlite3-$(node -p "require('better-sqlite3/package.json').version")-abi$(node -p process.versions.modules).node
if ! sqlite_ok; then
  [ -f "$kept" ] && cp "$kept" "$built"
  if ! sqlite_ok; then
    echo "setup: rebuilding better-sqlite3 for node $node_version" >&2
    npm rebuild better-sqlite3
  fi
fi
mkdir -p "$(dirname "$kept")" && cmp -s "$built" "$kept" || cp "$built" "$kept"
npm run build --silent
