#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for tests: one mon, one memstore OSD and radosgw on
# 127.0.0.1, no cephx (recipe and pitfalls: docs in ../shared/docs/test-infra.md).
#   bash scripts/rgw.sh start   -> prints `export ...` lines on stdout (eval them)
#   bash scripts/rgw.sh stop    -> kills the daemons by their pid files, removes the dir
# Env: RGW_DIR (default ./.rgw), RGW_PORT (default: first free port from RGW_PORT_BASE, 7480),
# RGW_MON_PORT_BASE (default 3300). Unpinned ports that another process grabs while we start
# (concurrent test runs) are detected and the start is retried with other ports.
# Installs nothing (scripts/setup.sh does). Progress and errors go to stderr.
set -euo pipefail

DIR=${RGW_DIR:-./.rgw}
[ "${1:-}" = start ] && mkdir -p "$DIR"
[ -d "$DIR" ] && DIR=$(cd "$DIR" && pwd)
CONF=$DIR/ceph.conf
MARK=$DIR/.tier-rgw # only a directory carrying this marker is ever removed by stop
DAEMONS=(client.rgw.a osd.0 mon.a) # stop order

say() { echo "rgw.sh: $*" >&2; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() { # first free port at or above $1
  local p=$1
  while port_busy "$p"; do p=$((p + 1)); done
  echo "$p"
}

# wait_for SECONDS WHAT CMD...: polls CMD every 0.25 s
wait_for() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.25
  done
}

# daemon NAME CMD...: starts a self-forking ceph daemon with no inherited pipes. Our stdout
# (fd 3) and stderr may be pipes a caller reads to EOF (`$(rgw.sh start)`, spawnSync): a
# daemon holding them open would make that caller wait forever.
daemon() {
  local name=$1
  shift
  "$@" </dev/null >>"$DIR/log/$name.out.log" 2>&1 3>&-
}

log_tails() {
  local f
  for f in "$DIR"/log/*.log; do
    [ -f "$f" ] || continue
    echo "----- tail of $f" >&2
    tail -n 25 "$f" >&2
  done
}

# owns_port PIDFILE PORT: 0 if that daemon listens on PORT, 2 if another process does, 1 if nobody yet
owns_port() {
  command -v ss >/dev/null || return 0 # cannot tell: trust the pid file
  local pid line
  pid=$(cat "$1" 2>/dev/null || true)
  line=$(ss -ltnpH "sport = :$2" 2>/dev/null | grep '127.0.0.1' || true)
  [ -z "$line" ] && return 1
  [ -n "$pid" ] && [[ "$line" == *"pid=$pid,"* ]] && return 0
  [ -z "$pid" ] && return 1
  return 2
}

# wait_port SECONDS WHAT PIDFILE PORT: waits for the daemon to listen; exit 75 on a clash
wait_port() {
  local deadline=$((SECONDS + $1)) rc
  while :; do
    rc=0
    owns_port "$3" "$4" || rc=$?
    [ $rc -eq 0 ] && return 0
    if [ $rc -eq 2 ]; then
      say "port $4 for $2 was taken by another process"
      stop
      exit 75
    fi
    ((SECONDS < deadline)) || fail "$2 not listening on 127.0.0.1:$4 after $1s"
    sleep 0.25
  done
}

is_ceph_pid() { # a pid file may outlive its process; never signal a recycled pid
  local pid=$1
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq '(ceph-mon|ceph-osd|radosgw)'
}

stop() {
  [ -d "$DIR" ] || return 0
  local d pid pf i
  for d in "${DAEMONS[@]}"; do
    pf=$DIR/run/$d.pid
    [ -f "$pf" ] || continue
    pid=$(cat "$pf")
    if [[ "$pid" =~ ^[0-9]+$ ]] && is_ceph_pid "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 40; i++)); do
        is_ceph_pid "$pid" || break
        sleep 0.25
      done
      if is_ceph_pid "$pid"; then
        say "$d (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
  done
  if [ -f "$MARK" ]; then
    rm -rf "$DIR"
  else
    say "not removing $DIR: no $MARK marker (not created by rgw.sh start?)"
  fi
}

fail() {
  say "FAILED: $*"
  log_tails
  stop
  exit 1
}

start() {
  local attempt rc
  for attempt in 1 2 3; do
    rc=0
    (start_once "$attempt") || rc=$?
    [ $rc -eq 0 ] && return 0
    if [ $rc -ne 75 ] || [ -n "${RGW_PORT:-}" ] || [ $attempt -eq 3 ]; then exit 1; fi
    say "retrying with other ports"
  done
}

start_once() {
  local attempt=$1
  mkdir -p "$DIR"
  for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl; do
    command -v "$b" >/dev/null || { say "$b not found: run scripts/setup.sh (installs radosgw ceph-mon ceph-osd)"; exit 1; }
  done
  if [ -f "$DIR/run/mon.a.pid" ] && is_ceph_pid "$(cat "$DIR/run/mon.a.pid")"; then
    say "a cluster already runs in $DIR; stop it first (RGW_DIR=$DIR bash scripts/rgw.sh stop)"
    exit 1
  fi
  rm -rf "${DIR:?}"/* "$MARK"
  touch "$MARK"
  mkdir -p "$DIR"/{run,log,mon,osd,rgw}

  local port mon_port fsid osd_uuid ak sk t0=$SECONDS
  local spread=$(((attempt - 1) * (RANDOM % 400 + 20)))
  port=${RGW_PORT:-$(free_port $((${RGW_PORT_BASE:-7480} + spread)))}
  port_busy "$port" && fail "port $port on 127.0.0.1 is in use"
  mon_port=$(free_port $((${RGW_MON_PORT_BASE:-3300} + spread)))
  [ "$mon_port" = "$port" ] && mon_port=$(free_port $((port + 1)))
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ak=TIER$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
  sk=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')

  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public network = 127.0.0.0/8
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon data avail crit = 1
mon data avail warn = 2
[mon.a]
mon data = $DIR/mon
[osd.0]
osd data = $DIR/osd
osd objectstore = memstore
memstore device bytes = 8589934592
[client.rgw.a]
rgw data = $DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
EOF
  export CEPH_CONF=$CONF
  say "starting a cluster in $DIR (mon 127.0.0.1:$mon_port, rgw 127.0.0.1:$port)"

  monmaptool --create --add a "v2:127.0.0.1:$mon_port" --fsid "$fsid" "$DIR/monmap" >/dev/null 2>&1 ||
    fail "monmaptool"
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >/dev/null 2>&1 || fail "ceph-mon --mkfs"
  daemon ceph-mon ceph-mon -c "$CONF" -i a || fail "ceph-mon start"
  wait_port 20 "the monitor" "$DIR/run/mon.a.pid" "$mon_port"
  wait_for 30 "the monitor" timeout 5 ceph -c "$CONF" --connect-timeout 3 mon stat || fail "monitor not up"

  local id
  id=$(timeout 20 ceph -c "$CONF" osd new "$osd_uuid" 2>/dev/null) || fail "ceph osd new"
  [ "$id" = 0 ] || fail "ceph osd new returned '$id', expected 0"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1 || fail "ceph-osd --mkfs"
  daemon ceph-osd ceph-osd -c "$CONF" -i 0 || fail "ceph-osd start"
  wait_for 40 "the OSD to be up" sh -c "timeout 5 ceph -c '$CONF' osd stat 2>/dev/null | grep -q '1 up'" ||
    fail "OSD not up"

  # radosgw forks once it has connected to the cluster
  daemon radosgw timeout 60 radosgw -c "$CONF" -n client.rgw.a || fail "radosgw start"
  wait_port 60 "radosgw" "$DIR/run/client.rgw.a.pid" "$port"
  wait_for 60 "radosgw on port $port" curl -sf -o /dev/null "http://127.0.0.1:$port/" || fail "radosgw not answering"

  timeout 30 radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
    --access-key="$ak" --secret-key="$sk" >/dev/null 2>&1 || fail "radosgw-admin user create"

  # The first operations on a fresh cluster are slow (pool creation): pay that here.
  local b=warmup-$RANDOM$RANDOM url
  url=http://127.0.0.1:$port/$b
  wait_for 30 "bucket creation" curl -sf -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ak:$sk" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$url" || fail "warm-up bucket creation"
  curl -sf -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ak:$sk" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    --data-binary warm "$url/obj" >/dev/null || fail "warm-up object put"
  curl -sf -X DELETE --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ak:$sk" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "$url/obj" >/dev/null || fail "warm-up object delete"
  curl -sf -X DELETE --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ak:$sk" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "$url" >/dev/null || fail "warm-up bucket delete"

  say "ready in $((SECONDS - t0))s"
  cat >&3 <<EOF
export TIER_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=$ak
export AWS_SECRET_ACCESS_KEY=$sk
export AWS_REGION=us-east-1
export TIER_TEST_RGW_DIR=$DIR
EOF
}

exec 3>&1 1>&2 # stdout carries only the export lines
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    say "usage: $0 start|stop"
    exit 2
    ;;
esac
