#!/usr/bin/env bash
# Installs what tier and its tests need on a fresh Debian machine (as root). Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for cmd in radosgw:radosgw ceph-mon:ceph-mon ceph-osd:ceph-osd mkfs.xfs:xfsprogs mkfs.ext4:e2fsprogs \
           getfattr:attr curl:curl rclone:rclone fusermount3:fuse3 losetup:mount gcc:gcc \
           nginx:nginx-light qemu-img:qemu-utils fio:fio chromium:chromium; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
