#!/usr/bin/env bash
# Sessions benchmark (issue 4): session list and get at 10,000 sessions x 50
# messages, and what the session path adds to a run.
#   usage: bench/sessions_bench.sh BUILD_DIR [SESSIONS]
# 1. Populates a state dir: clawgate creates and migrates clawgate.db, then
#    the sqlite3 CLI bulk-inserts SESSIONS (default 10,000) sessions of 25
#    runs each (a user message and a reply per run: 50 messages) in one
#    transaction, following the store's rules (pos = run_seq*65536 + 0 | 1,
#    a message's id = session id * 2^24 + its number in the session,
#    each run's user message marked 'stop', the session counters, context marks).  Runs are inserted
#    in time order across all sessions, as live traffic would write them, so
#    one session's messages are spread over the file (the pessimistic case
#    for GET /v1/sessions/{key}).
# 2. wrk at 1 and 16 connections, 8 s a row: GET /v1/sessions?limit=50 (first
#    page), a deep page (cursor at the middle of the list), a channel filter,
#    GET /v1/sessions/{key} of a random key per request (50 messages).
#    Prints req/s, p50 and p99 per row, then the server's RSS.
# 3. The write path: POST /v1/agent/run (local/echo, echoDelayMs 0, on a
#    session: recorded) against POST /v1/chat/completions model local/echo
#    without X-OpenClaw-Session-Key (stateless, not recorded), 1 connection,
#    the difference of the medians; the storage write path inside the
#    gateway (the session actor's own timing of its store calls per run,
#    logged at info; a gateway of its own per case, 4 s each); and
#    store_bench, the two SQLite transactions alone on a fresh file.
# A benchmark, not a test: it exits non-zero only when it cannot set up.
set -euo pipefail
build="${1:?usage: $0 BUILD_DIR [SESSIONS]}"
n_sessions="${2:-10000}"
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || ./deploy/install-deps.sh --bench
command -v sqlite3 >/dev/null || { echo "sessions_bench: needs the sqlite3 CLI (apt-get install sqlite3)"; exit 1; }
gw="$build/gateway/clawgate"; sb="$build/bench/store_bench"
for f in "$gw" "$sb"; do [ -x "$f" ] || { echo "missing $f (build first)"; exit 1; }; done

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

port_of() { # file -> port from "listening on ...:PORT"
    for _ in $(seq 1 400); do
        p=$(grep -o 'listening on [^ ]*' "$1" 2>/dev/null | grep -o '[0-9]*$' || true)
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.05
    done
    echo "no port in $1" >&2; exit 1
}
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
to_us() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n }'; }
now_ms() { date +%s%3N; }

state="$tmp/state"
cat > "$tmp/cfg.json" <<JSON
{"limits":{"rateLimit":0,"maxConcurrent":1000},
 "providers":{"local":{"echoDelayMs":0}}}
JSON
start_gw() { # [LOG_LEVEL] -> sets gw_pid, gp
    CLAWGATE_LOG_LEVEL=${1:-warn} "$gw" serve --port 0 --state-dir "$state" --config "$tmp/cfg.json" \
        > "$tmp/gw.out" 2> "$tmp/gw.err" & gw_pid=$!; pids+=($gw_pid)
    gp=$(port_of "$tmp/gw.out")
    until curl -sf "http://127.0.0.1:$gp/ready" >/dev/null; do sleep 0.1; done
}
stop_gw() { kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true; : > "$tmp/gw.out"; }

# ---- 1. Populate ---------------------------------------------------------------
start_gw; stop_gw      # creates state/clawgate.db at the current schema
db="$state/clawgate.db"
t0=$(now_ms)
base=$(( $(now_ms) - 86400000 ))          # a day ago
last=$(( n_sessions - 1 ))
sqlite3 "$db" > /dev/null <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
BEGIN;
-- Run k of session i happens at base + (k*n + i)*100 ms: sessions interleave.
CREATE TEMP TABLE plan AS
  WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < $last),
                 r(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM r WHERE k < 24)
  SELECT i, k, $base + (k * $n_sessions + i) * 100 AS at FROM s, r;
INSERT INTO sessions (id, session_key, agent_id, channel, created_at, updated_at,
                      message_count, last_seq, next_run)
  SELECT i + 1, printf('bench-%05d', i), CASE WHEN i % 5 = 4 THEN 'support' ELSE 'default' END,
         CASE i % 10 WHEN 0 THEN 'telegram' WHEN 1 THEN 'telegram' WHEN 2 THEN 'openai'
                     WHEN 3 THEN 'openai' WHEN 4 THEN 'openai' ELSE 'api' END,
         min(at), max(at) + 50, 50, 25 * 12, 25
  FROM plan GROUP BY i ORDER BY i;
INSERT INTO messages (id, session_id, pos, role, content, run_id, created_at, model,
                      finish_reason, prompt_tokens, completion_tokens, tool_calls,
                      tool_call_id, error, in_context, run_status)
  SELECT (i + 1) * 16777216 + k * 2 + m, i + 1, k * 65536 + m, CASE m WHEN 0 THEN 'user' ELSE 'assistant' END,
         CASE m WHEN 0 THEN printf('Question %d of session %d: what is the capital of France, and why?', k, i)
                ELSE printf('Answer %d: Paris. %s', k, substr(replace(hex(zeroblob(150)), '00', 'lorem ipsum '), 1, 280)) END,
         printf('run-%08x%024x', i, k), at + m * 50,
         CASE m WHEN 1 THEN 'local/echo' END, CASE m WHEN 1 THEN 'stop' END,
         CASE m WHEN 1 THEN 14 + k * 80 ELSE 0 END, CASE m WHEN 1 THEN 60 ELSE 0 END,
         NULL, NULL, NULL, 1, CASE m WHEN 0 THEN 'stop' END
  FROM plan, (SELECT 0 AS m UNION ALL SELECT 1) ORDER BY at, m;
DROP TABLE plan;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
ANALYZE;
SQL
pop_ms=$(( $(now_ms) - t0 ))
counts=$(sqlite3 "$db" "SELECT (SELECT count(*) FROM sessions) || ' sessions, ' || (SELECT count(*) FROM runs) || ' runs, ' || (SELECT count(*) FROM messages) || ' messages'")
db_mb=$(du -m "$db" | cut -f1)
echo "sessions_bench: populated $counts in $pop_ms ms ($db_mb MiB)"
# The cursor of the middle of the list (the row before it, as the gateway
# encodes it: "updatedAt-id").
mid=$(( n_sessions / 2 ))
deep=$(sqlite3 "$db" "SELECT updated_at || '-' || id FROM sessions ORDER BY updated_at DESC, id DESC LIMIT 1 OFFSET $((mid - 1))")

# ---- 2. Reads --------------------------------------------------------------------
start_gw
tok=$(cat "$state/token")
url="http://127.0.0.1:$gp"
idle_rss=$(rss_mb "$gw_pid")
# Sanity: the pages are what they should be.
first=$(curl -sf -H "Authorization: Bearer $tok" "$url/v1/sessions?limit=50")
echo "$first" | grep -q '"nextCursor":"' || { echo "first page has no nextCursor: ${first:0:300}"; exit 1; }
one=$(curl -sf -H "Authorization: Bearer $tok" "$url/v1/sessions/bench-00042")
[ "$(echo "$one" | grep -o '"role":' | wc -l)" -eq 50 ] || { echo "bench-00042 has not 50 messages: ${one:0:300}"; exit 1; }
curl -sf -H "Authorization: Bearer $tok" "$url/v1/sessions?limit=50&cursor=$deep" | grep -q '"sessionKey":"bench-' \
    || { echo "deep page is empty"; exit 1; }

cat > "$tmp/get.lua" <<'LUA'
-- GET PATH_PREFIX .. a random session key per request (KEYS keys).
local prefix = os.getenv("PATH_PREFIX")
local keys = tonumber(os.getenv("KEYS") or "0")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
function init(args)
    math.randomseed(os.time() + math.floor(os.clock() * 1000000) + tonumber(tostring({}):sub(8), 16) % 100000)
end
function request()
    if keys > 0 then
        return wrk.format("GET", string.format("%sbench-%05d", prefix, math.random(0, keys - 1)))
    end
    return wrk.format("GET", prefix)
end
LUA
cat > "$tmp/post.lua" <<'LUA'
-- POST BODY (a fixed JSON body) with the token.  With FRESH=1 the body is
-- BODY .. ',"sessionKey":"<new key>"}' per request: every run on a new
-- session (no context to load; one more insert).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = os.getenv("BODY")
local fresh = os.getenv("FRESH") == "1"
local tag, n = 0, 0
function init(args)
    tag = tonumber(tostring({}):sub(8), 16) % 1000000000
end
function request()
    if not fresh then
        return wrk.format(nil, nil, nil, wrk.body)
    end
    n = n + 1
    return wrk.format(nil, nil, nil,
                      string.format('%s,"sessionKey":"w%d-%d"}', wrk.body, tag, n))
end
LUA

# wrk_run SCRIPT CONNS SECONDS URL (env: PATH_PREFIX, KEYS, BODY) -> "rps p50_us p99_us non2xx"
wrk_run() {
    local script=$1 c=$2 d=$3 u=$4 t=2
    [ "$c" -eq 1 ] && t=1
    TOKEN=$tok wrk -t$t -c"$c" -d1s -s "$script" "$u" >/dev/null
    out=$(TOKEN=$tok wrk -t$t -c"$c" -d"${d}s" --latency -s "$script" "$u")
    bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); bad=${bad:-0}
    rps=$(echo "$out" | awk '/Requests\/sec/ {print int($2)}')
    p50=$(to_us "$(echo "$out" | awk '$1=="50%" {print $2}')")
    p99=$(to_us "$(echo "$out" | awk '$1=="99%" {print $2}')")
    echo "$rps $p50 $p99 $bad"
}

declare -A R
names=("list first page (limit=50)" "list deep page (cursor at $mid)" "list channel=api (limit=50)" "get session (50 messages, random key)")
prefixes=("/v1/sessions?limit=50" "/v1/sessions?limit=50&cursor=$deep" "/v1/sessions?channel=api&limit=50" "/v1/sessions/")
keys=(0 0 0 "$n_sessions")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "sessions_bench: clawgate :$gp, $n_sessions sessions x 50 messages; wrk 8 s per row; load average $load_before ($(nproc) CPUs)"
peak_rss=$idle_rss
for q in 0 1 2 3; do
    for c in 1 16; do
        R[$q,$c]=$(PATH_PREFIX=${prefixes[$q]} KEYS=${keys[$q]} wrk_run "$tmp/get.lua" "$c" 8 "$url")
        read -r rps p50 p99 bad <<< "${R[$q,$c]}"
        printf 'result: %-40s c=%-2d %7s req/s  p50 %6s us  p99 %6s us%s\n' "${names[$q]}" "$c" "$rps" "$p50" "$p99" \
            "$([ "$bad" != 0 ] && echo "  ($bad non-2xx!)")"
        r=$(rss_mb "$gw_pid"); peak_rss=$(awk -v a="$r" -v b="$peak_rss" 'BEGIN {print (a > b ? a : b)}')
    done
done
read_rss=$(rss_mb "$gw_pid")

# ---- 3. Writes -----------------------------------------------------------------------
words="one two three four five six seven eight"
W_sess=$(FRESH=1 BODY="{\"message\":\"$words\"" wrk_run "$tmp/post.lua" 1 8 "$url/v1/agent/run")
W_old=$(BODY="{\"message\":\"$words\",\"sessionKey\":\"bench-00007\"}" wrk_run "$tmp/post.lua" 1 8 "$url/v1/agent/run")
W_oai=$(BODY="{\"model\":\"local/echo\",\"messages\":[{\"role\":\"user\",\"content\":\"$words\"}]}" wrk_run "$tmp/post.lua" 1 8 "$url/v1/chat/completions")
W_oai_s=$(BODY="{\"model\":\"local/echo\",\"messages\":[{\"role\":\"user\",\"content\":\"$words\"}]}" wrk_run "$tmp/post.lua" 1 8 "$url/v1/chat/completions")
for w in "agent/run, a new session per run|$W_sess" "agent/run, session bench-00007 (50+ msgs)|$W_old" \
         "chat/completions stateless|$W_oai" "chat/completions stateless (again)|$W_oai_s"; do
    read -r rps p50 p99 bad <<< "${w#*|}"
    printf 'result: %-40s c=1  %7s req/s  p50 %6s us  p99 %6s us%s\n' "${w%%|*}" "$rps" "$p50" "$p99" \
        "$([ "$bad" != 0 ] && echo "  ($bad non-2xx!)")"
done
write_rss=$(rss_mb "$gw_pid")
stop_gw
# The storage write path inside the gateway: the session actor logs, at
# info and at stop, the time its store writes took per run (the arrival's
# transaction plus the end's, without the context read, which it times
# apart).  One gateway per case, so the stop line covers that case.
store_stats() { # BODY -> "median_us p99_us runs context_read_median_us"
    start_gw info
    BODY="$1" wrk_run "$tmp/post.lua" 1 4 "http://127.0.0.1:$gp/v1/agent/run" >/dev/null
    stop_gw
    grep 'store writes per run' "$tmp/gw.err" | tail -1 \
        | sed -E 's/.* ([0-9]+) runs recorded.*store writes per run: median ([0-9]+) us, p99 ([0-9]+) us.*context reads: median ([0-9]+) us.*/\2 \3 \1 \4/'
}
S_new=$(FRESH=1 store_stats "{\"message\":\"$words\"")
S_old=$(store_stats "{\"message\":\"$words\",\"sessionKey\":\"bench-00007\"}")
echo "result: store writes per run in the gateway (median p99 runs; context read median): new session $S_new; session with 50+ messages $S_old"
store_line=$("$sb" 5000 100 "$state" 2>/dev/null)
echo "result: $store_line"

# ---- Summary ------------------------------------------------------------------------------
read -r _ s50 _ _ <<< "$W_sess"; read -r _ o50 _ _ <<< "$W_old"
read -r _ a50 _ _ <<< "$W_oai"; read -r _ b50 _ _ <<< "$W_oai_s"
stateless=$(awk -v a="$a50" -v b="$b50" 'BEGIN {print (a < b ? a : b)}')
printf '\n| query | connections | req/s | p50 (µs) | p99 (µs) | target |\n|---|--:|--:|--:|--:|---|\n'
for q in 0 1 2 3; do
    for c in 1 16; do
        read -r rps p50 p99 _ <<< "${R[$q,$c]}"
        printf '| %s | %d | %s | %s | %s | p99 < 5000 µs%s |\n' "${names[$q]}" "$c" "$rps" "$p50" "$p99" \
            "$(awk -v p="$p99" 'BEGIN {print (p < 5000 ? "" : " MISSED")}')"
    done
done
printf '\n| figure | value | target |\n|---|--:|---|\n'
printf '| load average before the reads / at the end (%s CPUs) | %s / %s | |\n' "$(nproc)" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '| populate %s | %s ms, %s MiB | |\n' "$counts" "$pop_ms" "$db_mb"
printf '| RSS idle on the populated store / peak during reads / after writes | %s / %s / %s MiB | |\n' "$idle_rss" "$peak_rss" "$write_rss"
printf '| agent/run p50 (a new session per run) / (session with 50+ messages) | %s / %s µs | |\n' "$s50" "$o50"
printf '| chat/completions stateless p50 (best of two) | %s µs | |\n' "$stateless"
printf '| added by the session path, p50 (new session, no context) | %s µs | whole path, not the write path alone (README) |\n' "$(awk -v a="$s50" -v b="$stateless" 'BEGIN {print a-b}')"
printf '| added by the session path, p50 (session with 50 messages of context) | %s µs | whole path, not the write path alone (README) |\n' "$(awk -v a="$o50" -v b="$stateless" 'BEGIN {print a-b}')"
read -r sn50 sn99 _ _ <<< "$S_new"; read -r so50 so99 _ ctx50 <<< "$S_old"
printf '| storage write path per run in the gateway, median (p99): new session / session with 50+ messages | %s (%s) / %s (%s) µs | <= 100 µs median |\n' "$sn50" "$sn99" "$so50" "$so99"
printf '| reading 50 messages of context for a run, in the gateway, median | %s µs | |\n' "$ctx50"
printf '| the two transactions alone (store_bench) | %s | |\n' "${store_line#store_bench: }"
