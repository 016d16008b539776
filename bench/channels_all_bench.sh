#!/usr/bin/env bash
# Every chat channel at once: Telegram, Discord, Slack (Socket Mode) and
# WhatsApp against their stand-ins, and the generic webhook, model
# local/echo, dmPolicy open everywhere.
#   usage: bench/channels_all_bench.sh [BUILD_DIR]   (default build-bench-all)
#   env:   N         messages per platform in the one-at-a-time phase (500)
#          RATE      their rate, messages/s (50)
#          CHATS     chats they are spread over (100)
#          ALL_RATE  messages/s per channel when all five are busy (20)
#          SECONDS_  length of that phase, s (30)
#          SETTLE    idle seconds after it before the last RSS (10)
#          PHASES    "single all" (default), "single" or "all"
#          HOOK      0: no webhook load in the "all" phase (default 1)
#          NO_BUILD  1: use BUILD_DIR as it is
# Builds BUILD_DIR (Release; only the gateway, the four stand-ins and
# bench/channels_all_bench), then:
#   1. "single": one stand-in per platform (plus one per platform nobody
#      talks to, for the floor) and `clawgate serve` with the four chat
#      channels; each platform in turn gets N messages at RATE/s, the
#      others idle.  Delay = the reply's at_ms in the stand-in's sent log
#      minus the injection's CLOCK_REALTIME ms (see channels_all_bench.c).
#   2. "all": fresh stand-ins and a fresh gateway (its own state dir) with
#      all five channels; ALL_RATE messages/s on each for SECONDS_ s;
#      per-channel delays, RSS (fresh / peak / SETTLE s after), CPU per
#      message, per thread.
# Everything listens on 127.0.0.1 on free ports; the gateway's state and
# HOME are temporary directories, removed at exit with everything started
# here.  A benchmark, not a test: exits non-zero only when it cannot set up.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-bench-all}"
n="${N:-500}"; rate="${RATE:-50}"; chats="${CHATS:-100}"
all_rate="${ALL_RATE:-20}"; secs="${SECONDS_:-30}"; settle="${SETTLE:-10}"
phases="${PHASES:-single all}"

if [ "${NO_BUILD:-0}" != 1 ]; then
    # The stand-ins live under tests/ (CLAWGATE_TESTS); cg_dcstandin needs
    # libssl-dev (./deploy/install-deps.sh --test).
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCLAWGATE_TESTS=ON \
        -DCLAWGATE_BENCH=ON > /dev/null
    cmake --build "$build" -j2 --target clawgate cg_tgstandin cg_dcstandin \
        cg_slackstandin cg_wastandin channels_all_bench > /dev/null
fi
gw="$build/gateway/clawgate"; bench="$build/bench/channels_all_bench"
tg="$build/tests/standin/telegram/cg_tgstandin"; dc="$build/tests/standin/cg_dcstandin"
sl="$build/tests/standin/cg_slackstandin"; wa="$build/tests/standin/cg_wastandin"
for f in "$gw" "$bench" "$tg" "$dc" "$sl" "$wa"; do
    [ -x "$f" ] || { echo "missing $f (build first)"; exit 1; }
done

tmp=$(mktemp -d)
mkdir -p "$tmp/home"
export HOME="$tmp/home"  # never the user's ~/.clawgate
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

port_of() { # file -> port from "listening on ...:PORT"
    for _ in $(seq 1 400); do
        p=$(grep -o 'listening on [^ ]*' "$1" 2>/dev/null | grep -o '[0-9]*$' || true)
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.05
    done
    echo "no port in $1" >&2; exit 1
}

# start NAME BINARY ARGS...: starts a stand-in, sets port_NAME and pid_NAME.
start() {
    local name=$1; shift
    "$@" --port 0 > "$tmp/$name.out" 2> "$tmp/$name.err" & pids+=($!)
    eval "pid_$name=$!"
    eval "port_$name=$(port_of "$tmp/$name.out")"
}

hook_token="bench-hook-token-0123456789"
status() { # channel -> its status JSON
    curl -sf -H "Authorization: Bearer $gw_token" \
        "http://127.0.0.1:$gw_port/v1/channels/$1/status" || true
}

# gateway DIR WITH_HOOK: writes the configuration, starts `clawgate serve`,
# waits until the four chat channels are connected.
gateway() {
    local dir=$1 hook=$2 common='"dmPolicy":"open"'
    mkdir -p "$dir"
    local hooks=""
    [ "$hook" = 1 ] && hooks=",\"webhook\":{\"hooks\":{\"bench\":{\"token\":\"$hook_token\"}}}"
    cat > "$dir/cfg.json" <<JSON
{"channels":{
  "telegram":{"botToken":"123456:TEST","baseUrl":"http://127.0.0.1:$port_tg",
              "pollTimeoutS":10,$common},
  "discord":{"botToken":"dc-test-token","baseUrl":"http://127.0.0.1:$port_dc/api/v10",$common},
  "slack":{"botToken":"xoxb-test","appToken":"xapp-test",
           "baseUrl":"http://127.0.0.1:$port_sl/api",$common},
  "whatsapp":{"accessToken":"wa-test-token","phoneNumberId":"1100000001",
              "appSecret":"wa-app-secret","verifyToken":"wa-verify",
              "baseUrl":"http://127.0.0.1:$port_wa/v21.0",$common}$hooks},
 "limits":{"rateLimit":0,"maxConcurrent":0,"maxConnectionsPerAddress":0}}
JSON
    # Limits off: this measures the channel path, not the limiter.
    CLAWGATE_LOG_LEVEL=warn "$gw" serve --port 0 --state-dir "$dir/state" \
        --config "$dir/cfg.json" > "$dir/gw.out" 2> "$dir/gw.err" & pids+=($!)
    gw_pid=$!
    gw_port=$(port_of "$dir/gw.out")
    until curl -sf "http://127.0.0.1:$gw_port/health" > /dev/null; do sleep 0.1; done
    gw_token=$(cat "$dir/state/token")
    for ch in telegram discord slack whatsapp; do
        for _ in $(seq 1 150); do
            status $ch | grep -q '"status":"connected"' && break
            sleep 0.1
        done
        status $ch | grep -q '"status":"connected"' \
            || { echo "$ch never connected: $(status $ch)"; tail -5 "$dir/gw.err"; exit 1; }
    done
}

stop_gateway() { # DIR: SIGTERM, then the log's warnings and errors
    kill "$gw_pid" 2>/dev/null || true
    wait "$gw_pid" 2>/dev/null || true
    local n
    n=$(grep -ciE 'warn|error' "$1/gw.err" || true)
    echo
    echo "gateway log: $n warning/error lines"
    grep -iE 'warn|error' "$1/gw.err" | head -10 || true
}

# The stand-ins: tg/dc/sl/wa for the gateway, *f for the floor.
standins() {
    start tg "$tg"; start dc "$dc"; start sl "$sl"; start wa "$wa"
}

echo "# channels_all_bench: HEAD $(git rev-parse --short HEAD 2>/dev/null || echo '?'), clawgate built" \
    "$(date -u -r "$gw" '+%H:%M'), run $(date -u '+%Y-%m-%d %H:%M') UTC," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
dirty=$(git diff --name-only HEAD -- . ':!bench' 2>/dev/null | tr '\n' ' ' || true)
[ -z "$dirty" ] || echo "# uncommitted changes outside bench/ (the build may hold them): $dirty"

for phase in $phases; do
    standins
    if [ "$phase" = single ]; then
        start tgf "$tg"; start dcf "$dc"; start slf "$sl"; start waf "$wa"
        gateway "$tmp/single" 0
        "$bench" --phase single --pid "$gw_pid" --gw-port "$gw_port" \
            --tg "$port_tg" --dc "$port_dc" --sl "$port_sl" --wa "$port_wa" \
            --tg-floor "$port_tgf" --dc-floor "$port_dcf" --sl-floor "$port_slf" \
            --wa-floor "$port_waf" --n "$n" --rate "$rate" --chats "$chats"
        stop_gateway "$tmp/single"
    else
        gateway "$tmp/all" "${HOOK:-1}"
        hook_args=()
        [ "${HOOK:-1}" = 0 ] || hook_args=(--hook bench --hook-token "$hook_token")
        "$bench" --phase all --pid "$gw_pid" --gw-port "$gw_port" \
            --tg "$port_tg" --dc "$port_dc" --sl "$port_sl" --wa "$port_wa" \
            "${hook_args[@]}" --rate "$all_rate" \
            --chats "$chats" --seconds "$secs" --settle "$settle"
        stop_gateway "$tmp/all"
    fi
    # Fresh stand-ins for the next phase (and no replay of old updates).
    for v in pid_tg pid_dc pid_sl pid_wa; do kill "${!v}" 2>/dev/null || true; done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
