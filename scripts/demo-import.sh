#!/usr/bin/env bash
# The cloud-gateway demo (`npm run demo:import`), as root: a web server's tree (nginx with
# autoindex on 127.0.0.1, serving a large tar) is imported as released files with
# `tier import`; `tar tvf BIG.tar | head` then fetches only part of it. The server's
# access log counts the bytes it sent.
#
# Two runs: the default recall settings, then a `recall { whole_file_for ... }` without
# tar (tar reading its own archive gets ranges either way: both fetch about what tar
# reads; docs/recall.md, docs/tiers.md "Import"). Idempotent: a previous run's daemon and nginx are stopped and
# the filesystem unmounted first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/demo-lib.sh # TIER, tier(), say(), need_root

BASE=/var/lib/tier-demo-import
MNT=/mnt/tier-demo-import
IMG=$BASE/fs.img
STATE=$BASE/state
WWW=$BASE/www
NGX=$BASE/nginx
PIDFILE=$BASE/daemon.pid
DATA=$MNT/data
MEMBERS=${TIER_DEMO_MEMBERS:-8}   # 16 MiB each

need_root demo-import
command -v nginx > /dev/null || { echo "demo-import: needs nginx (apt-get install nginx-light)" >&2; exit 1; }

stop_pid() { # pidfile, pattern its cmdline must match
  local f=$1 pat=$2 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$pat"; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}
cleanup() {
  stop_pid "$PIDFILE" "daemon .*--state-dir $STATE"
  stop_pid "$NGX/nginx.pid" "nginx"
  if mountpoint -q "$MNT"; then umount "$MNT"; fi
}
cleanup
rm -rf "$BASE"
mkdir -p "$BASE" "$MNT" "$WWW/pub" "$NGX"
trap cleanup EXIT

say "a web server's tree: $WWW/pub/big.tar ($MEMBERS members of 16 MiB) and a README"
mkdir -p "$BASE/src/release"
for i in $(seq -w 1 "$MEMBERS"); do head -c $((16 * 1024 * 1024)) /dev/urandom > "$BASE/src/release/part-$i.bin"; done
tar -C "$BASE/src" -cf "$WWW/pub/big.tar" release
rm -rf "$BASE/src"
echo "mirror of release tarballs" > "$WWW/pub/README.txt"
chmod -R a+rX "$BASE"
TAR_SIZE=$(stat -c %s "$WWW/pub/big.tar")
ls -l "$WWW/pub"

PORT=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
cat > "$NGX/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $NGX/nginx.pid; error_log $NGX/error.log;
events { worker_connections 64; }
http { access_log $NGX/access.log; server { listen 127.0.0.1:$PORT; root $WWW;
  location / { autoindex on; } } }
EOF
nginx -c "$NGX/nginx.conf" -p "$NGX" &
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/" > /dev/null && break; sleep 0.1; done
say "nginx serving http://127.0.0.1:$PORT/pub/ (access log $NGX/access.log)"

say "a 256 MiB ext4 filesystem at $MNT: the imported tree takes no data blocks"
truncate -s 256M "$IMG"
mkfs.ext4 -q -F -I 512 "$IMG"
mount -o loop "$IMG" "$MNT"
mkdir -p "$DATA"

policy() { # file, extra text
  cat > "$1" <<EOF
tier mirror { http "http://127.0.0.1:$PORT/pub/" }
fileset data { root "$DATA" }
policy keep on data { rule all: true -> keep }
$2
EOF
}

start_daemon() {
  "${TIER[@]}" daemon "$1" --state-dir "$STATE" > "$BASE/daemon.out" 2>> "$BASE/daemon.log" &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 600); do
    grep -qx ready "$BASE/daemon.out" 2>/dev/null && return 0
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "demo-import: the daemon exited:" >&2; cat "$BASE/daemon.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "demo-import: the daemon did not become ready" >&2; exit 1
}

sent_for() { # body bytes nginx sent for GETs of a path
  awk -v p="$1" '$6 == "\"GET" && $7 == p { n += $10 } END { print n + 0 }' "$NGX/access.log"
}

run() { # label, policy file, target dir
  say "$1: tier daemon $2"
  start_daemon "$2"
  say "tier import mirror $3 --config $2"
  mkdir -p "$3"
  tier import mirror "$3" --config "$2" --state-dir "$STATE"
  ls -ls "$3"
  local before after
  before=$(sent_for /pub/big.tar)
  say "tar tvf $3/big.tar | head -4"
  tar tvf "$3/big.tar" | head -4 || true
  sleep 0.5 # the access log line is written when the response ends
  after=$(sent_for /pub/big.tar)
  echo "$1: server sent $((after - before)) bytes of big.tar ($TAR_SIZE bytes); $(( $(stat -c %b "$3/big.tar") * 512 )) bytes now local"
  stop_pid "$PIDFILE" "daemon .*--state-dir $STATE"
}

policy "$BASE/default.hsmpolicy" ""
run "default settings" "$BASE/default.hsmpolicy" "$DATA/mirror"
policy "$BASE/no-tar.hsmpolicy" 'recall { whole_file_for "cp", "mv", "install", "rsync", "cpio" }'
run "tar not in whole_file_for" "$BASE/no-tar.hsmpolicy" "$DATA/mirror-2"

say "stopping nginx, unmounting"
cleanup
trap - EXIT
echo "demo-import done (run again to start over)"
