#!/usr/bin/env bash
#  =========================================================================
#  ratelimit_bench - what the limiter adds to a request: two `clawgate
#  serve` in the same run, one with the limits off and one with them on
#
#  usage: bench/ratelimit_bench.sh BUILD_DIR
#
#  "on" has the rate and concurrency limits enabled but set high enough
#  that wrk is never refused (rateLimit 100,000,000/min, maxConcurrent
#  1000), so every request takes the limiter's whole path: lease look-up,
#  a token and a slot, X-RateLimit-* headers, lease calls to the ratelimit
#  actor in batches of 256 tokens, the keeper thread's renewals.  "off" has
#  rateLimit 0 and maxConcurrent 0.  Runs wrk against them in turn (off,
#  on, off, on) on GET /v1/models (answered by the front alone: the
#  limiter's cost is not hidden in the broker round trip) and GET /status
#  (the broker path), at 1 connection and at 16, and prints the median
#  p50 of each and the difference.  Target: the limiter adds <= 20 µs to
#  the median request.  A benchmark, not a test: it exits non-zero only
#  when it cannot set up or run.  Takes about 2 minutes.
#  =========================================================================
set -euo pipefail

ROUNDS=3                    #  Rounds per target and row
DURATION=6s                 #  Each measured wrk run
WARMUP=2s                   #  Unmeasured run per target before measuring
THREADS=32                  #  civetweb threads in both servers
TARGET_ADDED_US=20          #  on p50 - off p50

die () { echo "ratelimit_bench: $*" >&2; exit 1; }
say () { echo "ratelimit_bench: $*" >&2; }

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
[ -d "$1" ] || die "no build directory $1"
BUILD=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLAWGATE="$BUILD/gateway/clawgate"
[ -x "$CLAWGATE" ] || die "$CLAWGATE not built"
command -v curl >/dev/null || die "curl is missing (./deploy/install-deps.sh)"
if ! command -v wrk >/dev/null; then
    say "wrk is missing: installing it"
    "$ROOT/deploy/install-deps.sh" --bench || die "could not install wrk"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ratelimit_bench.XXXXXX")
PIDS=()
cleanup () {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TOKEN=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

#  start NAME RATE CONCURRENT: starts serve, leaves its port in PORT_NAME.
start () {
    local name=$1 port="" deadline
    env -u CLAWGATE_CONFIG -u CLAWGATE_PORT -u CLAWGATE_AUTH \
        CLAWGATE_TOKEN="$TOKEN" CLAWGATE_BIND=127.0.0.1 \
        CLAWGATE_LOG_LEVEL=warn CLAWGATE_THREADS=$THREADS \
        CLAWGATE_RATE_LIMIT="$2" CLAWGATE_MAX_CONCURRENT="$3" \
        "$CLAWGATE" serve --port 0 --state-dir "$TMP/$name" \
        >"$TMP/$name.log" 2>"$TMP/$name.err" &
    PIDS+=($!)
    eval "PID_$name=$!"
    deadline=$((SECONDS + 15))
    while [ -z "$port" ]; do
        [ $SECONDS -lt $deadline ] || die "$name announced no port"
        port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' \
               "$TMP/$name.log" | head -n 1)
        [ -n "$port" ] || sleep 0.05
    done
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ]; do
        [ $SECONDS -lt $deadline ] || die "$name never ready"
        sleep 0.05
    done
    eval "PORT_$name=$port"
}
start off 0 0
start on 100000000 1000
# shellcheck disable=SC2154
curl -s -D - -o /dev/null -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT_on/v1/models" | grep -q '^X-RateLimit-Limit: 100000000' \
    || die "the 'on' server sends no X-RateLimit headers"

#  wrk_parse FILE: "p50_us non2xx requests"
wrk_parse () {
    awk 'function us (v,   n, u) {
             n = v + 0; u = v; sub (/^[0-9.]+/, "", u)
             if (u == "us") return n
             if (u == "ms") return n * 1000
             if (u == "s")  return n * 1000000
             return -1
         }
         $1 == "50%"      { p50 = us($2) }
         / requests in /  { n = $1 }
         /Non-2xx or 3xx/ { err += $NF }
         END { if (p50 == "" || p50 < 0) exit 1; printf "%.1f %d %d\n", p50, err, n }' "$1"
}
median () {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2];
              else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

run () {   #  run TARGET PATH CONNS DURATION OUT
    local port
    port=$(eval echo "\$PORT_$1")
    wrk -t1 -c"$3" -d"$4" --latency -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$port$2" >"$5" 2>&1 || die "wrk failed: $(tail -n 3 "$5")"
    kill -0 "$(eval echo "\$PID_$1")" 2>/dev/null || die "$1 died under load"
}

LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
for t in off on; do run $t /v1/models 16 $WARMUP "$TMP/warm-$t"; done
declare -A P50
ROWS=("/v1/models 1" "/v1/models 16" "/status 1" "/status 16")
for row in "${ROWS[@]}"; do
    read -r path conns <<<"$row"
    declare -A acc=([off]="" [on]="")
    for round in $(seq $ROUNDS); do
        for t in off on; do
            out="$TMP/$t-$round.txt"
            run $t "$path" "$conns" $DURATION "$out"
            read -r p50 errors requests < <(wrk_parse "$out") || die "cannot parse: $(cat "$out")"
            [ "$errors" -eq 0 ] || die "$t $path c$conns: $errors non-2xx of $requests (limits hit?)"
            say "$(printf '%-3s %-10s c%-2s round %d: p50 %7.1f µs (%d requests)' $t "$path" "$conns" "$round" "$p50" "$requests")"
            acc[$t]+=" $p50"
        done
    done
    # shellcheck disable=SC2086
    P50[off $row]=$(median ${acc[off]})
    # shellcheck disable=SC2086
    P50[on $row]=$(median ${acc[on]})
done

echo "Limiter on vs off, same run: wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'),"\
     "$(nproc) CPUs, load average at start $LOAD_START, median p50 of $ROUNDS x $DURATION"
echo
echo "| request | connections | p50 off (µs) | p50 on (µs) | added (µs) | target |"
echo "|---|--:|--:|--:|--:|---|"
for row in "${ROWS[@]}"; do
    read -r path conns <<<"$row"
    off=${P50[off $row]}; on=${P50[on $row]}
    added=$(awk "BEGIN { printf \"%.1f\", $on - $off }")
    ok=$(awk "BEGIN { print ($added <= $TARGET_ADDED_US) ? \"met\" : \"missed\" }")
    echo "| GET $path | $conns | $off | $on | $added | <= $TARGET_ADDED_US µs ($ok) |"
done
