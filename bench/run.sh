#!/usr/bin/env bash
# The whole benchmark of bench/README.md in one command: glockd vs the echo
# ceiling (glockd's own loop, no lock table) vs Redis (SET NX / DEL), each
# server pinned to one core and the load generator to the other, several
# rounds, medians, and ratios taken within each round.
#
#   bench/run.sh                      # everything, about 12 minutes
#   RUNS=3 DURATION=2 bench/run.sh    # quicker, noisier
#
# Settings (environment): BUILD (build directory, release build; default
# /tmp/glockd-bench-build), RUNS (5), DURATION (4 s measured per run),
# WARMUP (1 s), SERVER_CPU (0), CLIENT_CPU (1), PORT (first of three ports,
# 17400), IDLE_CONNS (10000), ORPHAN_LOCKS (10000), MANY_CONNS (1000),
# EXTRA_RUNS (3: rounds of the glockd-only workloads), OUT (raw logs).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-/tmp/glockd-bench-build}
RUNS=${RUNS:-5}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-17400}
IDLE_CONNS=${IDLE_CONNS:-10000}
ORPHAN_LOCKS=${ORPHAN_LOCKS:-10000}
MANY_CONNS=${MANY_CONNS:-1000}
EXTRA_RUNS=${EXTRA_RUNS:-3}
OUT=${OUT:-/tmp/glockd-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"

# --- what is needed -------------------------------------------------------
# shellcheck source=scripts/deps.sh disable=SC2154  # build_deps comes from deps.sh
. "$SRC/scripts/deps.sh"
install_missing "${build_deps[@]}" redis-server python3 util-linux procps
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" "$SRC" --buildtype=release >"$OUT/meson-setup.log"
fi
ninja -C "$BUILD" glockd bench/glockd-echo bench/glockd-loadgen >"$OUT/build.log"
GLOCKD=$BUILD/glockd
ECHO=$BUILD/bench/glockd-echo
LOADGEN=$BUILD/bench/glockd-loadgen
REDIS=$(command -v redis-server)
# Our own limit is the servers' (they raise soft to hard themselves).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -Hn)

# --- servers --------------------------------------------------------------
SERVER_PID=
port_of() { case $1 in glockd) echo "$PORT" ;; echo) echo $((PORT + 1)) ;; redis) echo $((PORT + 2)) ;; esac; }
proto_of() { [ "$1" = redis ] && echo resp || echo line; }

start_server() {  # kind [extra flags...]
  local kind=$1 port; shift
  port=$(port_of "$kind")
  local tries=0
  while ss -Htln "sport = :$port" | grep -q .; do  # a server of ours still exiting?
    if ((++tries > 50)); then echo "port $port is in use: set PORT to another base" >&2; exit 1; fi
    sleep 0.1
  done
  case $kind in
    glockd) taskset -c "$SERVER_CPU" "$GLOCKD" --port "$port" --bind 127.0.0.1 --ws 0 "$@" \
              >>"$OUT/glockd.log" 2>&1 & ;;
    echo) taskset -c "$SERVER_CPU" "$ECHO" --port "$port" --bind 127.0.0.1 --ws 0 "$@" \
              >>"$OUT/echo.log" 2>&1 & ;;
    redis) taskset -c "$SERVER_CPU" "$REDIS" --port "$port" --bind 127.0.0.1 --save '' \
              --appendonly no --protected-mode no --maxclients $((NOFILE - 1000)) \
              --daemonize no --logfile "$OUT/redis.log" "$@" & ;;
  esac
  SERVER_PID=$!
  if ! "$LOADGEN" --mode ping --port "$port" --proto "$(proto_of "$kind")" --timeout 10 \
      >/dev/null || ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "$kind did not come up on port $port; its log:" >&2
    tail -5 "$OUT/$kind.log" >&2
    exit 1
  fi
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
trap stop_server EXIT

loadgen() {  # tag kind args... : runs pinned, keeps the log, records the RESULT line
  local tag=$1 kind=$2; shift 2
  local log="$OUT/$tag.$kind.log"
  taskset -c "$CLIENT_CPU" "$LOADGEN" --port "$(port_of "$kind")" --proto "$(proto_of "$kind")" \
    --server-pid "$SERVER_PID" "$@" >"$log" 2>&1 || echo "  (exit $? - see $log)" >&2
  local result
  result=$(grep '^RESULT ' "$log" | tail -1 | cut -d' ' -f2-)
  echo "tag=$tag server=$kind $result" >>"$RESULTS"
  echo "  $tag $kind: $(grep -oE '(rps|p99_us|server_us_per_req|bytes_per_conn|orphan_ms|holding)=[^ ]+' <<<"$result" | tr '\n' ' ')"
}

rotate() {  # round, then items: the items rotated by round (drift hits all alike)
  local r=$1; shift
  local items=("$@") n=$# i
  for ((i = 0; i < n; i++)); do echo "${items[$(((i + r) % n))]}"; done
}

echo "glockd benchmark: $RUNS rounds, ${DURATION}s per run after ${WARMUP}s warm-up;"
echo "servers on CPU $SERVER_CPU, load generator on CPU $CLIENT_CPU; raw logs in $OUT"
echo "glockd $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo '?'), $(meson introspect \
  --buildoptions "$BUILD" 2>/dev/null | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"), "build")' 2>/dev/null || echo "build $BUILD"); $("$REDIS" --version | cut -d' ' -f1-3)"
echo "machine: $(nproc) CPUs, $(uname -r), open-file limit $NOFILE, load average $(cut -d' ' -f1-3 /proc/loadavg)"

for ((r = 1; r <= RUNS; r++)); do
  echo "round $r/$RUNS (load average $(cut -d' ' -f1 /proc/loadavg))"
  for kind in $(rotate "$r" glockd echo redis); do
    start_server "$kind"
    for cfg in "c50d1 50 1" "c50d16 50 16" "c${MANY_CONNS}d1 $MANY_CONNS 1"; do
      read -r name conns depth <<<"$cfg"
      loadgen "$name.r$r" "$kind" --connections "$conns" --depth "$depth" \
        --duration "$DURATION" --warmup "$WARMUP"
    done
    stop_server
  done
  # Memory: a fresh server each time, so earlier runs have not grown it.
  for kind in $(rotate "$r" glockd echo redis); do
    start_server "$kind"
    loadgen "idle.r$r" "$kind" --mode idle --connections "$IDLE_CONNS"
    stop_server
  done
  start_server glockd
  loadgen "orphan.r$r" glockd --mode orphan --locks "$ORPHAN_LOCKS"
  stop_server
done

echo "glockd-only workloads ($EXTRA_RUNS rounds)"
for ((r = 1; r <= EXTRA_RUNS; r++)); do
  start_server glockd
  for w in contend i sgsr wait; do
    for d in 1 16; do
      loadgen "$w-d$d.r$r" glockd --workload "$w" --keys 16 --wait-ms 100 --connections 50 \
        --depth "$d" --duration "$DURATION" --warmup "$WARMUP"
    done
  done
  stop_server
done

echo "connections up to the open-file limit ($NOFILE)"
start_server glockd
loadgen "maxconn" glockd --mode idle --connections $((NOFILE - 64)) --settle 1
stop_server

echo "lock lifetime (bench/lifetime.py)"
/usr/bin/python3 "$SRC/bench/lifetime.py" "$GLOCKD" | tee "$OUT/lifetime.txt"

/usr/bin/python3 "$SRC/bench/summarize.py" "$RESULTS" | tee "$OUT/summary.txt"
