#!/usr/bin/env bash
# Telegram channel benchmark: inbound message -> reply through clawgate,
# against the Bot API stand-in (tests/standin/telegram), echo model.
#   usage: bench/channels_bench.sh BUILD_DIR
#   env:   RATE      messages/s in the steady phase (default 100)
#          CHATS     chats they are spread over (default 1000)
#          SECONDS_  steady phase length, s (default 30)
#          BURST     messages posted back to back after it (default 1000, 0: none)
# Starts two stand-ins (one the gateway polls, one nobody polls for the
# floor) and `clawgate serve` with the telegram channel (dmPolicy open,
# pollTimeoutS 10, limits off), waits until the channel is connected, then
# runs build/bench/channels_bench: fresh RSS, the floor, 3,000 messages at
# 100/s over 1,000 chats (p50/p90/p99/max from injection to the reply's
# at_ms in the stand-in's sent log, lost/duplicated), RSS peak and after
# 10 s idle, gateway CPU per message, then the burst.  Prints the gateway
# log's warnings and errors.  Target (issue 18): figures only, no threshold.
# A benchmark, not a test: exits non-zero only when it cannot set up.
set -euo pipefail
build="${1:?usage: $0 BUILD_DIR}"
cd "$(dirname "$0")/.."
gw="$build/gateway/clawgate"; si="$build/tests/standin/telegram/cg_tgstandin"
bench="$build/bench/channels_bench"
for f in "$gw" "$si" "$bench"; do [ -x "$f" ] || { echo "missing $f (build first)"; exit 1; }; done
rate="${RATE:-100}"; chats="${CHATS:-1000}"; secs="${SECONDS_:-30}"; burst="${BURST:-1000}"

tmp=$(mktemp -d)
pids=()
cleanup() { touch "$tmp/done"; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

port_of() { # file -> port from "listening on ...:PORT"
    for _ in $(seq 1 400); do
        p=$(grep -o 'listening on [^ ]*' "$1" 2>/dev/null | grep -o '[0-9]*$' || true)
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.05
    done
    echo "no port in $1" >&2; exit 1
}

"$si" --port 0 > "$tmp/si.out" 2> "$tmp/si.err" & pids+=($!); si_pid=$!
"$si" --port 0 > "$tmp/floor.out" 2> "$tmp/floor.err" & pids+=($!)
sp=$(port_of "$tmp/si.out"); fp=$(port_of "$tmp/floor.out")
cat > "$tmp/cfg.json" <<JSON
{"channels":{"telegram":{"botToken":"123456:TEST","baseUrl":"http://127.0.0.1:$sp",
  "dmPolicy":"open","pollTimeoutS":10}},
 "limits":{"rateLimit":0,"maxConcurrent":0,"maxConnectionsPerAddress":0}}
JSON
# Limits off: this measures the channel path, not the limiter.
CLAWGATE_LOG_LEVEL=warn "$gw" serve --port 0 --state-dir "$tmp/state" --config "$tmp/cfg.json" \
    > "$tmp/gw.out" 2> "$tmp/gw.err" & pids+=($!); gw_pid=$!
gp=$(port_of "$tmp/gw.out")
until curl -sf "http://127.0.0.1:$gp/ready" >/dev/null; do sleep 0.1; done
tok=$(cat "$tmp/state/token")
for _ in $(seq 1 100); do
    curl -sf -H "Authorization: Bearer $tok" "http://127.0.0.1:$gp/v1/channels/telegram/status" \
        | grep -q '"connected"' && break
    sleep 0.1
done
curl -sf -H "Authorization: Bearer $tok" "http://127.0.0.1:$gp/v1/channels/telegram/status" \
    | grep -q '"connected"' || { echo "telegram never connected"; tail -5 "$tmp/gw.err"; exit 1; }

echo "# channels_bench: HEAD $(git rev-parse --short HEAD), clawgate built $(date -u -r "$gw" '+%H:%M'), run $(date -u '+%Y-%m-%d %H:%M') UTC; stand-in :$sp, floor :$fp, clawgate :$gp"
dirty=$(git diff --name-only HEAD -- . ':!bench' | tr '\n' ' ')
[ -z "$dirty" ] || echo "# uncommitted changes outside bench/ (the build may hold them): $dirty"
# Connections from the gateway to the stand-in, and the stand-in's accept
# queue (civetweb gives each connection one of its 32 threads until it has
# been idle 30 s), every 0.5 s: the maxima are printed after the run.
( while [ ! -f "$tmp/done" ]; do
      est=$(ss -Htn state established "( dport = :$sp )" 2>/dev/null | wc -l)
      q=$(ss -Htln "( sport = :$sp )" 2>/dev/null | awk '{print $2}')
      echo "$est ${q:-0}" >> "$tmp/conns"; sleep 0.5; done ) &
sampler=$!; pids+=($sampler)
"$bench" --tg-port "$sp" --floor-port "$fp" --pid "$gw_pid" --standin-pid "$si_pid" \
    --rate "$rate" --chats "$chats" --seconds "$secs" --burst "$burst" --settle 10
touch "$tmp/done"; wait "$sampler" 2>/dev/null || true
awk '$1 > e { e = $1 } $2 > q { q = $2 } END {
    printf "\n| connections gateway -> stand-in, most at once | stand-in accept queue, longest |\n|--:|--:|\n| %d | %d |\n", e, q }' "$tmp/conns"
printf '\n| gateway status after the run |\n|---|\n| %s |\n' \
    "$(curl -sf -H "Authorization: Bearer $tok" "http://127.0.0.1:$gp/v1/channels/telegram/status" | head -c 600)"
n=$(grep -ciE 'warn|error' "$tmp/gw.err" || true)
echo
echo "gateway log: $n warning/error lines"
grep -iE 'warn|error' "$tmp/gw.err" | head -20 || true
