#!/usr/bin/env bash
# Agent-run benchmark: chat completions through clawgate against the OpenAI
# stand-in, versus the stand-in directly, in one run on this machine.
#   usage: bench/runs_bench.sh BUILD_DIR
# Prints requests/s and p50/p99 at 1, 16 and 64 connections (non-streaming,
# wrk), time to first delta of streams (stream_load), and clawgate's RSS idle
# and while holding 1,000 concurrent streams.  A benchmark, not a test: it
# exits non-zero only when it cannot set up.
set -euo pipefail
build="${1:?usage: $0 BUILD_DIR}"
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || ./deploy/install-deps.sh --bench
gw="$build/gateway/clawgate"; si="$build/tests/standin/cg_standin"; load="$build/bench/stream_load"
for f in "$gw" "$si" "$load"; do [ -x "$f" ] || { echo "missing $f (build first)"; exit 1; }; done

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

port_of() { # file -> port from "listening on ...:PORT"
    for _ in $(seq 1 200); do
        p=$(grep -o 'listening on [^ ]*' "$1" 2>/dev/null | grep -o '[0-9]*$' || true)
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.05
    done
    echo "no port in $1" >&2; exit 1
}
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

"$si" --port 0 --threads 1100 --openai-key sk-bench > "$tmp/si.out" 2>&1 & pids+=($!); si_pid=$!
sp=$(port_of "$tmp/si.out")
cat > "$tmp/cfg.json" <<JSON
{"providers":{"openai":{"baseUrl":"http://127.0.0.1:$sp/v1","apiKey":"sk-bench","models":["gpt-4o-mini","slow"]}},
 "gateway":{"threads":1100,"reservedThreads":16},
 "limits":{"rateLimit":0,"maxConcurrent":0,"maxConnectionsPerAddress":0}}
JSON
# Limits off above: this measures runs, not the limiter (bench/ratelimit_bench.sh does).
# Idle RSS with the default configuration (64 HTTP threads).
CLAWGATE_LOG_LEVEL=warn "$gw" serve --port 0 --state-dir "$tmp/idle" > "$tmp/idle.out" 2>&1 & idle_pid=$!
ip=$(port_of "$tmp/idle.out")
until curl -sf "http://127.0.0.1:$ip/ready" >/dev/null; do sleep 0.1; done
sleep 1
default_idle_rss=$(rss_mb "$idle_pid")
kill "$idle_pid"; wait "$idle_pid" 2>/dev/null || true

CLAWGATE_LOG_LEVEL=warn "$gw" serve --port 0 --state-dir "$tmp/state" --config "$tmp/cfg.json" > "$tmp/gw.out" 2>"$tmp/gw.err" & pids+=($!); gw_pid=$!
gp=$(port_of "$tmp/gw.out")
tok=$(cat "$tmp/state/token")
until curl -sf "http://127.0.0.1:$gp/ready" >/dev/null; do sleep 0.1; done
idle_rss=$(rss_mb "$gw_pid")

direct_url="http://127.0.0.1:$sp/v1/chat/completions"
gw_url="http://127.0.0.1:$gp/v1/chat/completions"

# wrk_run NAME URL MODEL TOKEN CONNS -> "rps p50_us p99_us"
to_us() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n }'; }
wrk_run() {
    local url=$2 model=$3 token=$4 c=$5 t=2
    [ "$c" -eq 1 ] && t=1
    MODEL=$model TOKEN=$token wrk -t$t -c"$c" -d2s -s bench/chat.lua "$url" >/dev/null
    out=$(MODEL=$model TOKEN=$token wrk -t$t -c"$c" -d8s --latency -s bench/chat.lua "$url")
    if echo "$out" | grep -q "Non-2xx"; then echo "warning: $1 had non-2xx answers" >&2; fi
    rps=$(echo "$out" | awk '/Requests\/sec/ {print int($2)}')
    p50=$(to_us "$(echo "$out" | awk '$1=="50%" {print $2}')")
    p99=$(to_us "$(echo "$out" | awk '$1=="99%" {print $2}')")
    echo "$rps $p50 $p99"
}

echo "runs_bench: stand-in :$sp, clawgate :$gp; non-streaming chat completions (wrk, 8 s per row)"
declare -A R
for c in 1 16 64; do
    R[direct,$c]=$(wrk_run direct "$direct_url" gpt-4o-mini sk-bench "$c")
    R[gateway,$c]=$(wrk_run gateway "$gw_url" openai/gpt-4o-mini "$tok" "$c")
done
load_rss=$(rss_mb "$gw_pid")

# Time to first delta: 200 streaming requests on one kept-alive connection,
# curl's time_starttransfer each.  clawgate holds its response head back
# until the first delta, so its first byte is the first delta; the stand-in
# may send its head earlier, which only flatters the direct figure.
ttfd_p50() { # URL TOKEN MODEL -> median µs
    local body="{\"model\":\"$3\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"one two three\"}]}"
    local args=()
    for _ in $(seq 1 200); do
        args+=(-s -o /dev/null -w '%{time_starttransfer}\n' -H "Authorization: Bearer $2"
               -H 'Content-Type: application/json' "$1" -d "$body" --next)
    done
    curl "${args[@]}" -s -o /dev/null "${1%/v1/chat/completions}/health" \
        | awk 'NF {print int($1 * 1000000)}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}
td=$(ttfd_p50 "$direct_url" sk-bench gpt-4o-mini)
tg=$(ttfd_p50 "$gw_url" "$tok" openai/gpt-4o-mini)

# 1,000 concurrent slow streams (~0.75 s each), 3,000 in all; sample RSS.
( peak=0; while kill -0 "$gw_pid" 2>/dev/null && [ ! -f "$tmp/load.done" ]; do
      r=$(awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status"); [ "$r" -gt "$peak" ] && peak=$r
      echo "$peak" > "$tmp/peak"; sleep 0.1; done ) &
sampler=$!
held=$("$load" "$gw_url" "$tok" openai/slow 1000 3000) || true
touch "$tmp/load.done"; wait "$sampler" 2>/dev/null || true
peak_rss=$(awk '{printf "%.1f", $1/1024}' "$tmp/peak")
after_rss=$(rss_mb "$gw_pid")

printf '\n| target | connections | req/s | p50 (µs) | p99 (µs) |\n|---|--:|--:|--:|--:|\n'
for c in 1 16 64; do
    for t in direct gateway; do
        read -r rps p50 p99 <<< "${R[$t,$c]}"
        printf '| %s | %d | %s | %s | %s |\n' "$t" "$c" "$rps" "$p50" "$p99"
    done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
read -r d16 _ _ <<< "${R[direct,16]}"; read -r g16 _ _ <<< "${R[gateway,16]}"
read -r d64 _ _ <<< "${R[direct,64]}"; read -r g64 _ _ <<< "${R[gateway,64]}"
read -r _ d1p50 _ <<< "${R[direct,1]}"; read -r _ g1p50 _ <<< "${R[gateway,1]}"
printf '\n| figure | value | target |\n|---|--:|---|\n'
printf '| gateway/direct req/s, 16 connections | %s | |\n' "$(ratio "$g16" "$d16")"
printf '| gateway/direct req/s, 64 connections | %s | >= 0.30 |\n' "$(ratio "$g64" "$d64")"
printf '| added p50, 1 connection | %s µs | <= 100 µs |\n' "$(awk -v a="$g1p50" -v b="$d1p50" 'BEGIN {print a-b}')"
printf '| time to first delta p50, direct / gateway | %s / %s µs | added <= 1000 µs |\n' "$td" "$tg"
printf '| added time to first delta p50 | %s µs | <= 1000 µs |\n' "$(awk -v a="$tg" -v b="$td" 'BEGIN {print a-b}')"
printf '| RSS idle, default config (64 HTTP threads) | %s MiB | <= 15 MiB |\n' "$default_idle_rss"
printf '| RSS idle, 1,100 HTTP threads | %s MiB | |\n' "$idle_rss"
printf '| RSS after wrk load | %s MiB | |\n' "$load_rss"
printf '| 1,000 concurrent streams: %s | peak RSS %s MiB | <= 200 MiB |\n' "$held" "$peak_rss"
printf '| RSS after the streams | %s MiB | |\n' "$after_rss"
