#!/usr/bin/env bash
# The README demo (`npm run demo`), as root: a small loop-mounted ext4 filesystem with
# sample files, `tier daemon` in the background, `tier apply policies/demo.hsmpolicy`
# releasing the old files to a local-directory tier, then a released file read back:
# first a few bytes (only the touched chunk is fetched), then whole (byte-exact); then
# `tier report --html` draws what happened as one page ($BASE/report.html).
#
# The filesystem is mounted at $FS (the fileset's backing, inside the 0700 $BASE); the
# daemon shows its data directory at $DATA only while it serves: before it starts and
# after it stops, $DATA is empty (a reader gets ENOENT, never the zeros of a released file).
# Idempotent: a previous run's daemon is stopped and its filesystem unmounted first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/demo-lib.sh # TIER, tier(), say(), need_root

BASE=/var/lib/tier-demo
MNT=/mnt/tier-demo
IMG=$BASE/fs.img
FS=$BASE/fs
SRC=$FS/data
STATE=$BASE/state
TIERDIR=$BASE/tier
POLICY=policies/demo.hsmpolicy
PIDFILE=$BASE/daemon.pid
DATA=$MNT/data
BIG=$DATA/videos/holiday-2019.mkv

need_root demo

blocks() { stat -c %b "$1"; }

stop_daemon() {
  if [ -f "$PIDFILE" ]; then
    local pid
    pid=$(cat "$PIDFILE")
    # Only our daemon: a stale pid file must not make us signal a process that reused the pid.
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "daemon .*--state-dir $STATE"; then
      kill -TERM "$pid"
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$PIDFILE"
  fi
}

cleanup() {
  stop_daemon
  while mountpoint -q "$DATA" 2>/dev/null; do umount -l "$DATA"; done # a bind left by a killed daemon
  if mountpoint -q "$FS" 2>/dev/null; then umount "$FS"; fi
  if mountpoint -q "$MNT"; then umount "$MNT"; fi # an older demo mounted the image here
}

# --- a clean slate -------------------------------------------------------------------
cleanup
rm -rf "$BASE"
mkdir -p -m 0700 "$BASE"
mkdir -p "$TIERDIR" "$FS" "$DATA"
trap cleanup EXIT

say "a 256 MiB ext4 filesystem at $FS, the backing (loop image $IMG); $DATA is empty"
truncate -s 256M "$IMG"
mkfs.ext4 -q -F -I 512 "$IMG"   # 512-byte inodes keep the xattr record in the inode
mount -o loop "$IMG" "$FS"

say "sample files (old ones with old mtimes)"
mkdir -p "$SRC/videos" "$SRC/docs" "$SRC/logs" "$SRC/keep"
head -c $((48 * 1024 * 1024)) /dev/urandom > "$SRC/videos/holiday-2019.mkv"
head -c $((3 * 1024 * 1024)) /dev/urandom > "$SRC/docs/report-2021.pdf"
head -c $((512 * 1024)) /dev/urandom > "$SRC/logs/app.log"
head -c $((1024 * 1024)) /dev/urandom > "$SRC/keep/contract.pdf"
head -c $((2 * 1024 * 1024)) /dev/urandom > "$SRC/docs/draft-today.odt"
echo "small files stay" > "$SRC/notes.txt"
cp "$SRC/videos/holiday-2019.mkv" "$BASE/original.mkv" # kept aside (another filesystem) for the byte-exact check
# After the copy: touch sets atime too, and reading for the copy would have refreshed it.
touch -d '400 days ago' "$SRC/videos/holiday-2019.mkv" "$SRC/docs/report-2021.pdf" "$SRC/keep/contract.pdf" "$SRC/notes.txt"
touch -d '3 hours ago' "$SRC/logs/app.log"
sync
ls -l --time-style=+%F "$SRC"/*/ "$SRC"/notes.txt

say "allocated vs apparent size before"
du -sh --apparent-size "$SRC" | sed 's/^/apparent  /'
du -sh "$SRC" | sed 's/^/allocated /'

say "tier daemon $POLICY --state-dir $STATE (background, waits for 'ready')"
# Started directly (not through a shell function) so that $! is the daemon's own pid.
"${TIER[@]}" daemon "$POLICY" --state-dir "$STATE" > "$BASE/daemon.out" 2> "$BASE/daemon.log" &
echo $! > "$PIDFILE"
for _ in $(seq 1 600); do
  grep -qx ready "$BASE/daemon.out" 2>/dev/null && break
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "demo: the daemon exited; its log:" >&2; cat "$BASE/daemon.log" >&2; exit 1
  fi
  sleep 0.1
done
grep -qx ready "$BASE/daemon.out" || { echo "demo: the daemon did not become ready" >&2; exit 1; }
echo "daemon ready (pid $(cat "$PIDFILE"), log $BASE/daemon.log); $DATA now shows $SRC:"
ls "$DATA"

say "tier apply $POLICY (runs inside the daemon)"
tier apply "$POLICY" --state-dir "$STATE"

say "tier status"
tier status "$BIG" "$DATA/docs/report-2021.pdf" "$DATA/logs/app.log" \
  "$DATA/keep/contract.pdf" "$DATA/docs/draft-today.odt" "$DATA/notes.txt"

say "allocated vs apparent size after"
du -sh --apparent-size "$DATA" | sed 's/^/apparent  /'
du -sh "$DATA" | sed 's/^/allocated /'
echo "$(basename "$BIG"): $(stat -c %s "$BIG") bytes, $(blocks "$BIG") blocks of 512 allocated"

say "head -c 64 of the released file: only the chunk it touches is fetched"
head -c 64 "$BIG" | od -A d -t x1 | head -2
head -c 64 "$BASE/original.mkv" | od -A d -t x1 | head -2 | sed 's/^/original: /'
b=$(blocks "$BIG")
echo "$(basename "$BIG"): now $b blocks of 512 allocated = $((b / 2)) KiB of $(($(stat -c %s "$BIG") / 1024)) KiB fetched"
tier status "$BIG"

say "whole-file read: byte-exact?"
if cmp "$BIG" "$BASE/original.mkv"; then
  echo "byte-exact: $(sha256sum < "$BIG" | cut -c1-16)... = $(sha256sum < "$BASE/original.mkv" | cut -c1-16)..."
else
  echo "demo: MISMATCH after recall" >&2; exit 1
fi
tier status "$BIG"

say "tier report --html: the catalog and the recalls as one page (charts, no network needed)"
sleep 1.2 # the daemon writes its recall log once a second
tier report --html "$BASE/report.html" --state-dir "$STATE" --config "$POLICY"
echo "open file://$BASE/report.html in a browser (text: tier report --state-dir $STATE)"

say "stopping the daemon: $DATA is empty again (ENOENT, not zeros), then unmounting"
stop_daemon
echo "$DATA holds $(ls -A "$DATA" | wc -l) entries"
cat "$BIG" 2>&1 | head -1 || true
umount "$FS"
trap - EXIT
echo "demo done: image $IMG, tier $TIERDIR, state $STATE, report page $BASE/report.html (run again to start over)"
