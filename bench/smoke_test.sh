#!/usr/bin/env bash
# Checks that the benchmark runs and prints sane numbers (it does not judge
# performance): tiny loads from glockd-loadgen against a freshly started
# glockd, over TCP on a free port and over a unix socket. No Redis needed.
#   bench/smoke_test.sh PATH/TO/glockd PATH/TO/glockd-loadgen
set -uo pipefail
GLOCKD=${1:?usage: smoke_test.sh GLOCKD LOADGEN}
LOADGEN=${2:?usage: smoke_test.sh GLOCKD LOADGEN}
DIR=$(mktemp -d /tmp/glockd-bench-smoke.XXXXXX)
SOCK=$DIR/glockd.sock
PID=
failures=0
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
field() { grep '^RESULT ' "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# expect FILE KEY OP VALUE (numeric comparison with awk)
expect() {
  local v
  v=$(field "$1" "$2")
  if [ -z "$v" ] || ! awk -v a="$v" -v b="$4" "BEGIN { exit !(a $3 b) }"; then
    fail "$(basename "$1"): $2=$v, expected $3 $4"
    sed 's/^/    /' "$1"
  fi
}

# A free port: glockd refuses a port in use (exit 1), so try a few.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  PORT=$((20000 + RANDOM % 30000))
  "$GLOCKD" --port "$PORT" --bind 127.0.0.1 --ws 0 --unix "$SOCK" >"$DIR/glockd.log" 2>&1 &
  PID=$!
  if "$LOADGEN" --mode ping --port "$PORT" --timeout 5 >/dev/null 2>&1 && kill -0 "$PID"; then
    break
  fi
  kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
done
if [ -z "$PID" ]; then
  echo "FAIL: could not start glockd on a free port"; cat "$DIR/glockd.log"; exit 1
fi
echo "glockd pid $PID on 127.0.0.1:$PORT and $SOCK"

run() {  # name args...: one loadgen run, its output kept in $DIR/name.out
  local name=$1; shift
  if ! "$LOADGEN" "$@" >"$DIR/$name.out" 2>&1; then
    fail "$name: glockd-loadgen $* exited non-zero"; sed 's/^/    /' "$DIR/$name.out"
  fi
  grep '^RESULT ' "$DIR/$name.out" | sed "s/^/$name: /"
}

# Closed-loop g/r over TCP, pipelined, with the server's CPU per request.
run gr --port "$PORT" --connections 8 --depth 4 --duration 0.6 --warmup 0.2 --server-pid "$PID"
expect "$DIR/gr.out" requests '>' 100
expect "$DIR/gr.out" opened '==' 8
expect "$DIR/gr.out" fail '==' 0
expect "$DIR/gr.out" errors '==' 0
expect "$DIR/gr.out" unanswered '==' 0
expect "$DIR/gr.out" disconnects '==' 0
expect "$DIR/gr.out" p50_us '>' 0
expect "$DIR/gr.out" p999_us '>=' "$(field "$DIR/gr.out" p50_us)"
expect "$DIR/gr.out" server_us_per_req '>' 0

# A fixed request count over the unix socket: exactly that many answers.
run count --unix "$SOCK" --connections 4 --requests 2000 --server-pid "$PID"
expect "$DIR/count.out" requests '==' 2000
expect "$DIR/count.out" ok '==' 2000

# Contention over 2 keys: some takes fail, none goes unanswered.
run contend --unix "$SOCK" --workload contend --keys 2 --connections 8 --depth 2 \
  --duration 0.4 --warmup 0.1
expect "$DIR/contend.out" ok '>' 0
expect "$DIR/contend.out" fail '>' 0
expect "$DIR/contend.out" unanswered '==' 0
expect "$DIR/contend.out" errors '==' 0

# Idle connections holding a lock each, and the server's RSS.
run idle --port "$PORT" --mode idle --connections 50 --server-pid "$PID" --settle 0.1
expect "$DIR/idle.out" holding '==' 50
expect "$DIR/idle.out" rss_after_kib '>' 0

# A killed holder's locks come free, timed.
run orphan --unix "$SOCK" --mode orphan --locks 500 --timeout 10
expect "$DIR/orphan.out" released '==' 1
expect "$DIR/orphan.out" orphan_ms '>' 0
expect "$DIR/orphan.out" orphan_ms '<' 10000

# The lifetime figures (bench/lifetime.py), tiny: they run and every line
# is there; the daemons it starts exit cleanly.
LIFETIME="$(dirname "$0")/lifetime.py"
if ! /usr/bin/python3 "$LIFETIME" "$GLOCKD" --quick >"$DIR/lifetime.out" 2>&1; then
  fail "bench/lifetime.py exited non-zero"; sed 's/^/    /' "$DIR/lifetime.out"
fi
sed 's/^/lifetime: /' "$DIR/lifetime.out"
for want in "shutdown: .*(exit 0)" "ghosts: .*free after" "over tcp: 3 of 3" "over unix: 3 of 3" \
    "without --state-dir" "with --state-dir: next token ABOVE"; do
  grep -q -- "$want" "$DIR/lifetime.out" || fail "bench/lifetime.py printed no line like '$want'"
done

# The attack benchmark (bench/attack.py), every attack tiny (~2 s each): the
# script still runs against this daemon and every daemon it starts survives
# and exits on SIGTERM. It exits non-zero otherwise; it judges no figure.
ATTACK="$(dirname "$0")/attack.py"
if ! /usr/bin/python3 "$ATTACK" --smoke --glockd "$GLOCKD" >"$DIR/attack.out" 2>&1; then
  fail "bench/attack.py --smoke exited non-zero"
fi
sed 's/^/attack: /' "$DIR/attack.out"

# The TLS bench (bench/tls.sh), tiny: plain and TLS load at depth 16 and
# handshake mode against daemons it starts with --ssl (EC certificates from
# tests/tlscerts.py); a client trusting another CA and a plain client get no
# answer from the TLS port. It exits non-zero otherwise.
if ! "$(dirname "$0")/tls.sh" --smoke "$GLOCKD" "$LOADGEN" >"$DIR/tls.out" 2>&1; then
  fail "bench/tls.sh --smoke exited non-zero"
fi
sed 's/^/tls: /' "$DIR/tls.out"

# It never sends load anywhere but this machine.
if "$LOADGEN" --host 192.0.2.1 --port "$PORT" --duration 0.1 >/dev/null 2>&1; then
  fail "glockd-loadgen accepted a non-loopback host"
fi

if ! kill -0 "$PID" 2>/dev/null; then fail "glockd died during the smoke test"; fi
if [ "$failures" -ne 0 ]; then
  echo "bench smoke test: $failures failure(s)"; exit 1
fi
echo "bench smoke test: ok"
