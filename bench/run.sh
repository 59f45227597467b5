#!/usr/bin/env bash
# `npm run bench`: the benchmarks of issue 7 in one run (root: loop mounts, fanotify).
#   bash bench/run.sh [--scale S] [--only 1,2,...] [--no-results]
# --scale (or BENCH_SCALE) shrinks sizes; 1 = the issue's sizes (1 GiB files, a 1M-file
# tree, 10k x 64 KiB + 4 x 1 GiB). Default 0.5 (512 MiB files, 500k-file tree; ~6-8 min
# on a 2-core machine). BENCH_TREE_FILES=N sets the scan tree of benchmark 6 alone. The
# full run rewrites bench/RESULTS.md.
# Starts its own Ceph RGW (scripts/rgw.sh, stopped by pid at exit) unless
# TIER_TEST_S3_ENDPOINT + AWS_* are already set; builds bench/c-handler.c and
# bench/preader.c and bench/memtouch.c with gcc into a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${BENCH_SCALE:-0.5}
ONLY=""
RESULTS=bench/RESULTS.md
CMD="npm run bench"
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; CMD="$CMD -- --scale $2"; shift 2 ;;
    --scale=*) SCALE=${1#--scale=}; CMD="$CMD -- $1"; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --no-results) RESULTS=""; shift ;;
    *) echo "bench: unknown argument $1 (usage: bench/run.sh [--scale S] [--only 1,2] [--no-results])" >&2; exit 2 ;;
  esac
done
[ -n "${BENCH_SCALE:-}" ] && CMD="BENCH_SCALE=$BENCH_SCALE $CMD"
# A partial run never overwrites the results of a full one.
[ -n "$ONLY" ] && RESULTS=""

if [ "$(id -u)" != 0 ]; then echo "bench: run as root (loop mounts, fanotify)" >&2; exit 1; fi
for b in gcc strace rclone fusermount3 tar mkfs.ext4 sqlite3; do
  command -v "$b" >/dev/null || { echo "bench: $b not found" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/tier-bench-bin.XXXXXX)
RGW_STARTED=""
cleanup() {
  if [ -n "$RGW_STARTED" ]; then RGW_DIR=$TMP/rgw bash scripts/rgw.sh stop || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Benchmark 6c runs the built CLI (bin/tier.js -> dist/), as a user does.
echo "bench: npm run build" >&2
npm run build >/dev/null
gcc -O2 -Wall -o "$TMP/c-handler" bench/c-handler.c
gcc -O2 -Wall -o "$TMP/preader" bench/preader.c
gcc -O2 -Wall -o "$TMP/memtouch" bench/memtouch.c

if [ -z "${TIER_TEST_S3_ENDPOINT:-}" ]; then
  echo "bench: starting a Ceph RGW (scripts/rgw.sh, ~20 s)" >&2
  RGW_STARTED=1
  # Retried: the machine is shared, and another RGW can take the port rgw.sh picked.
  ok=""
  for attempt in 1 2 3; do
    if EXPORTS=$(RGW_DIR=$TMP/rgw bash scripts/rgw.sh start); then ok=1; break; fi
    echo "bench: RGW start failed (attempt $attempt)" >&2
  done
  [ -n "$ok" ] || { echo "bench: could not start a Ceph RGW" >&2; exit 1; }
  eval "$EXPORTS"
fi

ARGS=(--scale "$SCALE" --cbin "$TMP")
[ -n "$ONLY" ] && ARGS+=(--only "$ONLY")
[ -n "$RESULTS" ] && ARGS+=(--results "$RESULTS")
BENCH_COMMAND="$CMD" node --disable-warning=NodeVersionSupportWarning --import tsx bench/main.ts "${ARGS[@]}"
