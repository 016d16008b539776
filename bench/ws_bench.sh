#!/usr/bin/env bash
# WebSocket fan-out benchmark: N clients subscribed to one streaming session.
#   usage: bench/ws_bench.sh BUILD_DIR [N ...]        (default N: 1 100 1000)
#   env:   ECHO_DELAY_MS  local/echo pause between deltas (default 10, i.e.
#                         ~100 deltas/s from the provider)
#          WORDS          deltas in the measured run (default 1000)
#          QUEUE_FRAMES   websocket.queueFrames (default 4096, the default)
#          WRITERS        websocket.writers (default: the gateway's, 4)
# For each N it starts a fresh `clawgate serve` (so VmHWM is that N's peak),
# runs build/bench/ws_bench against it and prints ws_bench's line: deltas
# delivered in total per second, loss, lagged clients, p50/p99 delay from
# the run actor's publication of a delta (seen by a ZeroMQ tap on the
# event bus) to a client's read of it, and the gateway's RSS / VmHWM.
# Targets (issue 5): N=1000 -> delivered >= 10,000 deltas/s, loss 0,
# delay_p99 <= 5 ms.  A benchmark, not a test: exits non-zero only when it
# cannot set up.
set -euo pipefail
build="${1:?usage: $0 BUILD_DIR [N ...]}"
shift
ns=("$@")
[ ${#ns[@]} -gt 0 ] || ns=(1 100 1000)
cd "$(dirname "$0")/.."
gw="$build/gateway/clawgate"; bench="$build/bench/ws_bench"
for f in "$gw" "$bench"; do [ -x "$f" ] || { echo "missing $f (build first)"; exit 1; }; done
delay="${ECHO_DELAY_MS:-10}"; words="${WORDS:-1000}"; queue="${QUEUE_FRAMES:-4096}"

# Every connection holds a descriptor here and a descriptor + thread there.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d)
gw_pid=""
cleanup() { [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

port_of() { # file -> port from "listening on http://…:PORT"
    for _ in $(seq 1 400); do
        p=$(grep -o 'listening on http://[^ ]*' "$1" 2>/dev/null | grep -o '[0-9]*$' || true)
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.05
    done
    echo "no port in $1" >&2; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

writers_kv=${WRITERS:+,\"writers\":$WRITERS}
echo "# ws fan-out: echoDelayMs=$delay words=$words queueFrames=$queue cores=$(nproc)"
for n in "${ns[@]}"; do
    state="$tmp/state-$n"; mkdir -p "$state"
    cat > "$tmp/cfg-$n.json" <<JSON
{"gateway":{"threads":$((n + 64)),"reservedThreads":16},
 "limits":{"rateLimit":0,"maxConcurrent":1000000,"maxConnectionsPerAddress":0},
 "websocket":{"queueFrames":$queue$writers_kv},
 "providers":{"local":{"echoDelayMs":$delay}}}
JSON
    ev="tcp://127.0.0.1:$(free_port)"
    CLAWGATE_LOG_LEVEL=warn "$gw" serve --port 0 --state-dir "$state" \
        --config "$tmp/cfg-$n.json" --events "$ev" > "$tmp/gw-$n.out" 2> "$tmp/gw-$n.err" &
    gw_pid=$!
    gp=$(port_of "$tmp/gw-$n.out")
    until curl -sf "http://127.0.0.1:$gp/ready" >/dev/null; do sleep 0.1; done
    tok=$(cat "$state/token")
    if ! "$bench" --port "$gp" --token "$tok" --clients "$n" --words "$words" \
            --events "$ev" --pid "$gw_pid" --session "fanout-$n" 2> "$tmp/bench-$n.err"; then
        echo "N=$n failed:"; tail -5 "$tmp/bench-$n.err"; tail -5 "$tmp/gw-$n.err"
    fi
    kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true; gw_pid=""
done
