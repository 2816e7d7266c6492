#!/usr/bin/env bash
# Two builds of glockd side by side: interleaved rounds (A, B, B, A, ...) so
# that the machine's drift hits both alike; medians of server CPU per request.
#   bench/ab.sh SERVER_A SERVER_B [LOADGEN]
# Settings (environment): ROUNDS (5), DURATION (3 s), WARMUP (1 s),
# SERVER_CPU (0), CLIENT_CPU (1). Prints per config: median us/req of A and
# B, and the median of the per-round B/A ratio.
set -euo pipefail
A=${1:?usage: bench/ab.sh SERVER_A SERVER_B [LOADGEN]}
B=${2:?usage: bench/ab.sh SERVER_A SERVER_B [LOADGEN]}
LOADGEN=${3:-$(dirname "$B")/bench/glockd-loadgen}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=$(mktemp -d /tmp/glockd-ab.XXXXXX)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$OUT"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run() {  # server round: one server, every config, appended to $OUT/results
  local server=$1 round=$2 port
  port=$(free_port)
  taskset -c "$SERVER_CPU" "$server" --port "$port" --bind 127.0.0.1 --ws 0 >"$OUT/server.log" 2>&1 &
  PID=$!
  "$LOADGEN" --mode ping --port "$port" --timeout 10 >/dev/null  # answered: ready
  for cfg in "c50d1 50 1" "c50d16 50 16"; do
    read -r name conns depth <<<"$cfg"
    taskset -c "$CLIENT_CPU" "$LOADGEN" --port "$port" --server-pid "$PID" --connections "$conns" \
      --depth "$depth" --duration "$DURATION" --warmup "$WARMUP" >"$OUT/load.log" 2>&1
    local us
    us=$(grep '^RESULT ' "$OUT/load.log" | tr ' ' '\n' | sed -n 's/^server_us_per_req=//p')
    echo "$round $name $server $us" >>"$OUT/results"
  done
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then run "$A" "$r"; run "$B" "$r"; else run "$B" "$r"; run "$A" "$r"; fi
done

python3 - "$OUT/results" "$A" "$B" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
a, b = sys.argv[2], sys.argv[3]
for cfg in sorted({r[1] for r in rows}):
    us = {(r[0], r[2]): float(r[3]) for r in rows if r[1] == cfg}
    rounds = sorted({r for r, _ in us})
    ma = statistics.median(us[(r, a)] for r in rounds)
    mb = statistics.median(us[(r, b)] for r in rounds)
    ratio = statistics.median(us[(r, b)] / us[(r, a)] for r in rounds)
    print(f"{cfg:8s} server us/req  A {ma:.3f}  B {mb:.3f}  B/A {ratio:.3f}  ({len(rounds)} rounds)")
PY
