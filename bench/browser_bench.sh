#!/usr/bin/env bash
# Browser actor latency: navigate + viewport screenshot of a local page,
# through the gateway (HTTP -> broker -> browser actor -> CDP) against raw
# CDP (a Chromium of the bench's own, driven directly), p50/p99 each.
#   usage: bench/browser_bench.sh BUILD_DIR [ITERATIONS]      (default 50)
# Needs Debian's chromium (deploy/install-deps.sh --bench installs it).  A
# benchmark, not a test: exits non-zero only when it cannot set up.
set -euo pipefail
build="${1:?usage: $0 BUILD_DIR [ITERATIONS]}"
n="${2:-50}"
cd "$(dirname "$0")/.."
gw="$build/gateway/clawgate"; bench="$build/bench/browser_bench"
for f in "$gw" "$bench" /usr/bin/chromium; do
    [ -x "$f" ] || { echo "missing $f (build first; chromium: install-deps.sh --bench)"; exit 1; }
done
tmp=$(mktemp -d)
gw_pid=""
cleanup() { [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
cat > "$tmp/cfg.json" <<JSON
{"limits":{"rateLimit":0,"maxConcurrent":1000},"logLevel":"warn",
 "browser":{"navigateTimeoutMs":30000}}
JSON
"$gw" serve --port 0 --state-dir "$tmp/state" --config "$tmp/cfg.json" \
    > "$tmp/gw.out" 2> "$tmp/gw.err" &
gw_pid=$!
port=""
for _ in $(seq 1 400); do
    port=$(grep -o 'listening on http://[^ ]*' "$tmp/gw.out" 2>/dev/null | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "gateway did not start"; cat "$tmp/gw.err"; exit 1; }
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.1; done
echo "# browser: navigate + viewport screenshot (1280x800 PNG), n=$n, cores=$(nproc), $(/usr/bin/chromium --version 2>/dev/null | head -1)"
"$bench" --gateway "http://127.0.0.1:$port" --token "$(cat "$tmp/state/token")" -n "$n"
