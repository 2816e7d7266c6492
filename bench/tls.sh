#!/usr/bin/env bash
# TLS next to plain TCP (issue 12; bench/README.md "TLS (issue 12)"):
#  - steady state: the same closed-loop g/r load over plain TCP and over TLS
#    (each batch of requests one SSL_write, one TLS record), the server's CPU
#    per request, and the per-round ratio TLS/plain (goal: <= 1.5 at depth 16);
#  - handshakes: full handshakes per second from a pool of client slots (each
#    connect, handshake with a client certificate, one request, RST) and the
#    server's CPU per handshake, with EC P-256 and RSA-2048 certificates
#    (tests/tlscerts.py), next to plain TCP's connect + request + RST, and
#    with EC the same resuming each slot's last session (a ticket).
# Server pinned to SERVER_CPU, load generator to CLIENT_CPU; RUNS rounds, each
# round alternating which goes first; medians over rounds.
#
#   bench/tls.sh                          # everything, about 4 minutes
#   RUNS=3 DURATION=2 bench/tls.sh        # quicker, noisier
#   bench/tls.sh --smoke GLOCKD LOADGEN   # tiny, checks only that it works (smoke_test.sh)
#
# Settings (environment): BUILD (release build directory, default
# /tmp/glockd-bench-build), GLOCKD (another daemon binary to measure, e.g. an
# experiment; default BUILD/glockd), RUNS (5), DURATION (4 s per load run), WARMUP (1),
# CONNS (50), DEPTHS ("16 1"), HS_SLOTS (16 handshakes under way at once),
# HS_DURATION (3 s), SERVER_CPU (0), CLIENT_CPU (1), OUT (raw logs, results.txt,
# summary.txt).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
SMOKE=
if [ "${1:-}" = --smoke ]; then
  SMOKE=1
  GLOCKD=${2:?usage: tls.sh --smoke GLOCKD LOADGEN}
  LOADGEN=${3:?usage: tls.sh --smoke GLOCKD LOADGEN}
  RUNS=1 DURATION=0.2 WARMUP=0.1 CONNS=4 DEPTHS=16 HS_SLOTS=4 HS_COUNT=16
else
  BUILD=${BUILD:-/tmp/glockd-bench-build}
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$SRC" --buildtype=release >/dev/null
  fi
  ninja -C "$BUILD" glockd bench/glockd-loadgen >/dev/null
  GLOCKD=${GLOCKD:-$BUILD/glockd}
  LOADGEN=$BUILD/bench/glockd-loadgen
fi
RUNS=${RUNS:-5}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
DEPTHS=${DEPTHS:-"16 1"}
HS_SLOTS=${HS_SLOTS:-16}
HS_DURATION=${HS_DURATION:-3}
HS_COUNT=${HS_COUNT:-0}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
if [ -n "$SMOKE" ]; then
  OUT=$(mktemp -d /tmp/glockd-tls-smoke.XXXXXX)
else
  OUT=${OUT:-/tmp/glockd-tls-bench-$(date +%Y%m%d-%H%M%S)}
  mkdir -p "$OUT"
fi
RESULTS=$OUT/results.txt
: >"$RESULTS"
SERVER_PID=
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
cleanup() { stop_server; [ -z "$SMOKE" ] || rm -rf "$OUT"; }
trap cleanup EXIT

# Throw-away certificates (EC P-256 always; RSA-2048 for the handshake runs).
/usr/bin/python3 -c "import sys; sys.path.insert(0, '$SRC/tests'); import tlscerts; tlscerts.make_pki('$OUT/pki-ec')"
[ -n "$SMOKE" ] || /usr/bin/python3 -c "import sys; sys.path.insert(0, '$SRC/tests'); import tlscerts; tlscerts.make_pki('$OUT/pki-rsa', rsa_bits=2048)"

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pin() {  # cpu command...: pinned, except in the smoke test
  if [ -n "$SMOKE" ]; then "${@:2}"; else taskset -c "$1" "${@:2}"; fi
}
pin_exec() {  # the same, replacing the (background) shell: $! is the command's pid
  if [ -n "$SMOKE" ]; then exec "${@:2}"; else exec taskset -c "$1" "${@:2}"; fi
}
tls_args() { echo "--tls-ca $OUT/pki-$1/ca.pem --tls-cert $OUT/pki-$1/client.pem --tls-key $OUT/pki-$1/client.key"; }

# start_server plain|ec|rsa: glockd on a free port, answering a ping.
PORT=
start_server() {
  local kind=$1 flags=() ping=()
  if [ "$kind" != plain ]; then
    flags=(--ssl --ssl-cert "$OUT/pki-$kind/server.pem" --ssl-key "$OUT/pki-$kind/server.key"
           --ssl-ca "$OUT/pki-$kind/ca.pem")
    read -ra ping <<<"$(tls_args "$kind")"
  fi
  for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    pin_exec "$SERVER_CPU" "$GLOCKD" --port "$PORT" --bind 127.0.0.1 --ws 0 "${flags[@]}" \
      >>"$OUT/glockd.$kind.log" 2>&1 &
    SERVER_PID=$!
    if "$LOADGEN" --mode ping --port "$PORT" --timeout 10 "${ping[@]}" >/dev/null 2>&1 &&
        kill -0 "$SERVER_PID" 2>/dev/null; then
      return 0
    fi
    stop_server
  done
  echo "glockd ($kind) did not come up; its log:" >&2
  tail -5 "$OUT/glockd.$kind.log" >&2
  exit 1
}

loadgen() {  # tag kind args...: pinned, keeps the log, records the RESULT line
  local tag=$1 kind=$2 tls=(); shift 2
  [ "$kind" = plain ] || read -ra tls <<<"$(tls_args "$kind")"
  local log="$OUT/$tag.$kind.log"
  pin "$CLIENT_CPU" "$LOADGEN" --port "$PORT" --server-pid "$SERVER_PID" "${tls[@]}" "$@" \
    >"$log" 2>&1 || echo "  (exit $? - see $log)" >&2
  local result
  result=$(grep '^RESULT ' "$log" | tail -1 | cut -d' ' -f2-)
  echo "tag=$tag server=$kind $result" >>"$RESULTS"
  echo "  $tag $kind: $(grep -oE '(rps|hs_per_s|p50_us|p99_us|server_us_per_req|server_us_per_hs|failures)=[^ ]+' <<<"$result" | tr '\n' ' ')"
}

echo "glockd TLS benchmark: $RUNS rounds; load: $CONNS connections at depth(s) $DEPTHS," \
     "${DURATION}s after ${WARMUP}s; handshakes: $HS_SLOTS slots, ${HS_DURATION}s; raw logs in $OUT"
echo "$GLOCKD ($(git -C "$SRC" describe --always --dirty 2>/dev/null || echo '?')); $(openssl version);" \
     "machine: $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$HS_COUNT" -gt 0 ]; then HS=(--requests "$HS_COUNT"); else HS=(--duration "$HS_DURATION" --warmup 0.5); fi
for ((r = 1; r <= RUNS; r++)); do
  echo "round $r/$RUNS (load average $(cut -d' ' -f1 /proc/loadavg))"
  order="plain ec"; ((r % 2)) || order="ec plain"
  for kind in $order; do
    start_server "$kind"
    for d in $DEPTHS; do
      loadgen "c${CONNS}d$d.r$r" "$kind" --connections "$CONNS" --depth "$d" \
        --duration "$DURATION" --warmup "$WARMUP"
    done
    loadgen "hs.r$r" "$kind" --mode handshake --connections "$HS_SLOTS" "${HS[@]}"
    [ "$kind" = plain ] || loadgen "hs-resume.r$r" "$kind" --mode handshake --tls-resume 1 \
      --connections "$HS_SLOTS" "${HS[@]}"
    stop_server
  done
  if [ -z "$SMOKE" ]; then
    start_server rsa
    loadgen "hs.r$r" rsa --mode handshake --connections "$HS_SLOTS" "${HS[@]}"
    stop_server
  fi
done

if [ -n "$SMOKE" ]; then
  # Sane numbers, no failures, and a TLS client that cannot verify the
  # server (another CA) gets nowhere: the TLS path really is TLS.
  # One awk pass over results.txt: "tag server key op value" per line below.
  fails=$(awk -v results="$RESULTS" '
    BEGIN {
      while ((getline line < results) > 0) {
        n = split(line, f, " "); tag = ""; srv = ""
        for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[1] == "tag") tag = kv[2]; else if (kv[1] == "server") srv = kv[2] }
        for (i = 1; i <= n; i++) { split(f[i], kv, "="); val[tag " " srv " " kv[1]] = kv[2] }
      }
    }
    {
      v = val[$1 " " $2 " " $3]; a = v + 0; b = $5 + 0
      ok = v != "" && (($4 == ">" && a > b) || ($4 == "==" && a == b))
      if (!ok) { printf "FAIL: tls.sh --smoke: %s %s: %s=%s, expected %s %s\n", $1, $2, $3, v, $4, $5 > "/dev/stderr"; bad++ }
    }
    END { print bad + 0 }' <<EOF
c4d16.r1 plain requests > 50
c4d16.r1 plain errors == 0
c4d16.r1 plain unanswered == 0
c4d16.r1 plain disconnects == 0
c4d16.r1 plain server_us_per_req > 0
c4d16.r1 ec requests > 50
c4d16.r1 ec errors == 0
c4d16.r1 ec unanswered == 0
c4d16.r1 ec disconnects == 0
c4d16.r1 ec server_us_per_req > 0
c4d16.r1 ec tls == 1
c4d16.r1 ec tls_failures == 0
hs.r1 plain handshakes == $HS_COUNT
hs.r1 plain failures == 0
hs.r1 ec handshakes == $HS_COUNT
hs.r1 ec failures == 0
hs.r1 ec tls == 1
hs.r1 ec server_us_per_hs > 0
hs-resume.r1 ec handshakes == $HS_COUNT
hs-resume.r1 ec failures == 0
hs-resume.r1 ec resumed > 0
EOF
)
  start_server ec
  if "$LOADGEN" --mode ping --port "$PORT" --timeout 2 --tls-ca "$OUT/pki-ec/other_ca.pem" \
      --tls-cert "$OUT/pki-ec/client.pem" --tls-key "$OUT/pki-ec/client.key" >/dev/null 2>&1; then
    echo "FAIL: tls.sh --smoke: a client that trusts another CA got an answer"; fails=$((fails + 1))
  fi
  if "$LOADGEN" --mode ping --port "$PORT" --timeout 2 >/dev/null 2>&1; then
    echo "FAIL: tls.sh --smoke: plain TCP got an answer from the --ssl port"; fails=$((fails + 1))
  fi
  stop_server
  [ "$fails" -eq 0 ] || exit 1
  echo "tls.sh --smoke: ok"
  exit 0
fi
/usr/bin/python3 "$SRC/bench/tls_summarize.py" "$RESULTS" | tee "$OUT/summary.txt"
