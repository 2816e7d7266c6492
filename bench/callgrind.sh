#!/usr/bin/env bash
# Instructions per request, from callgrind: a deterministic cost figure that machine noise does not move.
#   bench/callgrind.sh BUILD_DIR [SERVER]   (SERVER: default BUILD_DIR/glockd; e.g. BUILD_DIR/bench/glockd-echo)
# For each depth in $DEPTHS (default "16 1") it starts SERVER under
# valgrind --tool=callgrind on a free loopback port, waits until it answers
# `q`, sends $REQUESTS requests (default 200000) from $CONNECTIONS
# connections (default 50) with glockd-loadgen, stops the server with
# SIGTERM and prints
#   callgrind depth=D requests=N instructions_per_request=X
# X is the whole process's Ir (startup, readiness probe and shutdown
# included) over the N requests answered. Runs of the same binary and load
# agree closely; use a release build. Output files stay in $OUT (default: a
# temporary directory, removed at the end).
# TLS=DIR (a tests/tlscerts.py PKI, e.g. made by bench/tls.sh): the server
# runs with --ssl and DIR's server certificate, the load generator connects
# with DIR's client certificate; the figure then includes the 50 handshakes.
# LOADGEN_ARGS: more options for the load generator (e.g. "--tls-version 1.2").
# HANDSHAKES=N (with TLS=DIR): instead of the load, N full handshakes (the
# load generator's handshake mode, 4 at a time), and
#   callgrind handshakes=N instructions_per_handshake=X
# (start-up included: take the difference of two N for the marginal cost).
set -euo pipefail

BUILD=${1:?usage: bench/callgrind.sh BUILD_DIR [SERVER]}
SERVER=${2:-$BUILD/glockd}
LOADGEN=$BUILD/bench/glockd-loadgen
REQUESTS=${REQUESTS:-200000}
CONNECTIONS=${CONNECTIONS:-50}
DEPTHS=${DEPTHS:-"16 1"}
READY_TIMEOUT=${READY_TIMEOUT:-60}
TLS=${TLS:-}
SERVER_TLS=() CLIENT_TLS=()
if [ -n "$TLS" ]; then
  SERVER_TLS=(--ssl --ssl-cert "$TLS/server.pem" --ssl-key "$TLS/server.key" --ssl-ca "$TLS/ca.pem")
  CLIENT_TLS=(--tls-ca "$TLS/ca.pem" --tls-cert "$TLS/client.pem" --tls-key "$TLS/client.key")
fi

for f in "$SERVER" "$LOADGEN"; do
  [ -x "$f" ] || { echo "callgrind.sh: $f: not an executable (build it first)" >&2; exit 2; }
done
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }

KEEP=${OUT:+1}
OUT=${OUT:-$(mktemp -d /tmp/glockd-callgrind.XXXXXX)}
mkdir -p "$OUT"
PID=
cleanup() {
  if [ -n "$PID" ]; then kill -KILL "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  [ -n "$KEEP" ] || rm -rf "$OUT"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Succeeds once something on 127.0.0.1:$1 answers `q` with a line; fails
# after $READY_TIMEOUT s or as soon as process $2 has exited.
wait_ready() {
  if [ -n "$TLS" ]; then  # the load generator's ping speaks TLS; the server must be alive
    "$LOADGEN" --mode ping --port "$1" --timeout "$READY_TIMEOUT" "${CLIENT_TLS[@]}" >/dev/null &&
      kill -0 "$2" 2>/dev/null
    return
  fi
  python3 - "$1" "$2" "$READY_TIMEOUT" <<'EOF'
import os, socket, sys, time
port, pid, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"q\n")
            if s.makefile("rb").readline().endswith(b"\n"):
                sys.exit(0)
    except OSError:
        time.sleep(0.05)  # not listening yet: poll again
sys.exit(1)
EOF
}

field() { { grep '^RESULT ' "$1" || true; } | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }

run_one() {  # depth
  local depth=$1 port cg log load
  cg=$OUT/callgrind.depth$depth.out  # depth "hs": the handshakes
  log=$OUT/server.depth$depth.log
  load=$OUT/loadgen.depth$depth.out
  # The port may be taken between free_port and the bind: try a few.
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    valgrind --tool=callgrind --callgrind-out-file="$cg" \
      "$SERVER" --port "$port" --bind 127.0.0.1 --ws 0 "${SERVER_TLS[@]}" >"$log" 2>&1 &
    PID=$!
    if wait_ready "$port" "$PID"; then break; fi
    kill -KILL "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=
  done
  if [ -z "$PID" ]; then
    echo "callgrind.sh: $SERVER did not start (see $log)" >&2; tail -20 "$log" >&2; exit 1
  fi
  local what=(--connections "$CONNECTIONS" --depth "$depth" --requests "$REQUESTS" --drain 30)
  [ "$depth" != hs ] || what=(--mode handshake --connections 4 --requests "$HANDSHAKES")
  # shellcheck disable=SC2086  # LOADGEN_ARGS is split into words on purpose
  if ! "$LOADGEN" --port "$port" "${CLIENT_TLS[@]}" ${LOADGEN_ARGS:-} "${what[@]}" \
      --timeout "$READY_TIMEOUT" >"$load" 2>&1; then
    echo "callgrind.sh: glockd-loadgen failed:" >&2; cat "$load" >&2; exit 1
  fi
  kill -TERM "$PID"
  local rc=0
  wait "$PID" || rc=$?
  PID=
  if [ "$rc" -ne 0 ]; then
    echo "callgrind.sh: $SERVER exited with status $rc after SIGTERM" >&2; tail -20 "$log" >&2; exit 1
  fi
  local served ir
  if [ "$depth" = hs ]; then
    served=$(field "$load" handshakes)
    ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$cg" | head -1)
    [ "$(field "$load" failures)" = 0 ] || echo "callgrind.sh: warning: failed handshakes:" \
      "$(grep '^RESULT ' "$load")" >&2
    awk -v n="$served" -v ir="$ir" \
      'BEGIN { printf "callgrind handshakes=%s instructions_per_handshake=%.0f\n", n, ir / n }'
    return
  fi
  served=$(field "$load" requests)
  ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$cg" | head -1)
  [ -n "$ir" ] || ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$cg" | head -1)
  if [ -z "$served" ] || [ "$served" -eq 0 ] || [ -z "$ir" ]; then
    echo "callgrind.sh: no request count or no Ir total (see $load, $cg)" >&2; exit 1
  fi
  if [ "$(field "$load" unanswered)" != 0 ] || [ "$(field "$load" errors)" != 0 ]; then
    echo "callgrind.sh: warning: depth $depth: unanswered or error answers:" \
      "$(grep '^RESULT ' "$load")" >&2
  fi
  awk -v d="$depth" -v n="$served" -v ir="$ir" \
    'BEGIN { printf "callgrind depth=%s requests=%s instructions_per_request=%.0f\n", d, n, ir / n }'
}

if [ -n "${HANDSHAKES:-}" ]; then
  [ -n "$TLS" ] || { echo "callgrind.sh: HANDSHAKES needs TLS=DIR" >&2; exit 2; }
  run_one hs
  exit 0
fi
for depth in $DEPTHS; do run_one "$depth"; done
