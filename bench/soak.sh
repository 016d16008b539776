#!/usr/bin/env bash
# Soak: clawgate serve under a steady mixed load for SOAK_SECONDS (default
# 1800), at SOAK_LOAD (default 0.8) of the capacity a short ramp measures
# first.  The mix (bench/soak.c): chat completions plain and streamed
# through the OpenAI stand-in, /v1/agent/run on 300 sessions, WebSocket runs
# on new sessions, aborts, clients hanging up mid-stream, garbage requests.
# Every 10 s the gateway's RSS, open fds and threads go to a CSV; at the end
# every session used must take a new run, and the script prints the RSS and
# fd drift after warm-up (goal <= 5 %) and the unexpected errors (goal 0).
#   usage: bench/soak.sh BUILD_DIR [OUT_DIR]
#   env:   SOAK_SECONDS, SOAK_LOAD, SOAK_RAMP_STEP (s per ramp step, 5),
#          SOAK_THREADS (driver threads, 48), SOAK_WARMUP (s, 20 % of the run)
# A benchmark, not a test: loopback only, bounded in rate and time.  Exits 1
# when an operation went wrong, a session is stuck or the drift is over 5 %.
set -euo pipefail
build="${1:?usage: $0 BUILD_DIR [OUT_DIR]}"
out="${2:-$(mktemp -d /tmp/clawgate-soak-XXXXXX)}"
secs="${SOAK_SECONDS:-1800}"
load="${SOAK_LOAD:-0.8}"
step="${SOAK_RAMP_STEP:-5}"
threads="${SOAK_THREADS:-48}"
warmup="${SOAK_WARMUP:-$((secs / 5))}"
cd "$(dirname "$0")/.."
gw="$build/gateway/clawgate"; si="$build/tests/standin/cg_standin"; drv="$build/bench/soak"
for f in "$gw" "$si" "$drv"; do [ -x "$f" ] || { echo "missing $f (build first)"; exit 1; }; done
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

port_of() { # file -> port from "listening on ...:PORT"
    for _ in $(seq 1 400); do
        p=$(grep -o 'listening on [^ ]*' "$1" 2>/dev/null | grep -o '[0-9]*$' || true)
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.05
    done
    echo "no port in $1" >&2; exit 1
}

token="soak-token-0123456789abcdef0123"
"$si" --port 0 --threads 256 --openai-key sk-soak > "$out/standin.log" 2>&1 & pids+=($!)
sp=$(port_of "$out/standin.log")
mkdir -p "$out/state"
# Limits off (rate, concurrency, connections per address): this soaks the
# gateway, the driver is one client on 127.0.0.1.
cat > "$out/config.json" <<JSON
{"auth":{"mode":"token","token":"$token"},
 "logLevel":"warn",
 "limits":{"rateLimit":0,"maxConcurrent":0,"maxConnectionsPerAddress":0},
 "providers":{"openai":{"type":"openai","baseUrl":"http://127.0.0.1:$sp/v1","apiKey":"sk-soak",
                        "models":["gpt-4o-mini","slow"]}},
 "browser":{"chromium":"/nonexistent/clawgate-soak"}}
JSON
"$gw" serve --port 0 --state-dir "$out/state" --config "$out/config.json" \
    > "$out/gateway.out" 2> "$out/gateway.log" & gw_pid=$!; pids+=($gw_pid)
port=$(port_of "$out/gateway.out")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

sample() { # t -> one CSV row: seconds, rss_kb, fds, threads, phase
    local rss thr fds phase=load
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$gw_pid/status")
    thr=$(awk '/^Threads/ {print $2}' "/proc/$gw_pid/status")
    fds=$(ls "/proc/$gw_pid/fd" | wc -l)
    [ -e "$out/load.done" ] && phase=check
    echo "$1,$rss,$fds,$thr,$phase"
}

echo "soak: gateway pid $gw_pid on port $port, stand-in on $sp, output in $out"
echo "soak: measuring capacity (closed loop, ${step}s per step)"
"$drv" ramp "$port" "$token" "$step" | tee "$out/ramp.txt"
cap=$(awk '/^capacity/ {print $2}' "$out/ramp.txt")
rate=$(awk -v c="$cap" -v l="$load" 'BEGIN {printf "%.1f", c * l}')
echo "soak: capacity $cap ops/s; soaking at $rate ops/s ($load) for ${secs}s, warm-up ${warmup}s"

echo "seconds,rss_kb,fds,threads,phase" > "$out/samples.csv"
rm -f "$out/load.done"
SOAK_LOAD_DONE="$out/load.done" "$drv" run "$port" "$token" "$rate" "$secs" "$threads" > "$out/driver.txt" 2> "$out/driver.err" & drv_pid=$!
t0=$(date +%s)
sample 0 >> "$out/samples.csv"
while kill -0 "$drv_pid" 2>/dev/null; do
    sleep 10
    kill -0 "$gw_pid" 2>/dev/null || { echo "soak: the gateway died"; break; }
    sample $(( $(date +%s) - t0 )) >> "$out/samples.csv"
done
drv_rc=0; wait "$drv_pid" || drv_rc=$?
alive=yes; kill -0 "$gw_pid" 2>/dev/null || alive=no
cat "$out/driver.txt"
head -30 "$out/driver.err"

# Drift: the mean of the last quarter of the load's samples after warm-up
# against the mean of their first quarter (the session check after the
# load is left out: its connections are not the load's).
report=$(awk -F, -v w="$warmup" 'NR > 1 && $1 >= w && $5 == "load" {i = n++; r[i] = $2; f[i] = $3; h[i] = $4}
    END {
        if (n < 4) { print "too few samples after warm-up"; exit }
        q = int(n / 4); if (q < 1) q = 1
        for (i = 0; i < q; i++) { r0 += r[i]; f0 += f[i]; r1 += r[n-1-i]; f1 += f[n-1-i] }
        r0 /= q; r1 /= q; f0 /= q; f1 /= q
        printf "rss %.1f -> %.1f MB (%+.1f %%), fds %.0f -> %.0f (%+.1f %%), threads %d -> %d, samples %d\n",
            r0/1024, r1/1024, (r1-r0)*100/r0, f0, f1, (f1-f0)*100/f0, h[0], h[n-1], n
        if ((r1-r0)*100/r0 > 5 || (f1-f0)*100/f0 > 5) exit 3
    }' "$out/samples.csv") && drift_rc=0 || drift_rc=$?
echo "soak: drift after warm-up: $report"
echo "soak: gateway alive at the end: $alive; samples in $out/samples.csv"
tail -1 "$out/samples.csv" | awk -F, '{printf "soak: after the check: rss %.1f MB, fds %d, threads %d\n", $2/1024, $3, $4}'
grep -c -E 'ERROR|runtime error|AddressSanitizer' "$out/gateway.log" | sed 's/^/soak: error lines in the gateway log: /' || true
[ "$alive" = yes ] && [ "$drv_rc" -eq 0 ] && [ "$drift_rc" -eq 0 ]
