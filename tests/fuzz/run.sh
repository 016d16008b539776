#!/usr/bin/env bash
# Runs the libFuzzer targets of a CLAWGATE_FUZZ build.
#
#   tests/fuzz/run.sh BUILD SECONDS [TARGET...]   fuzz each target SECONDS
#   tests/fuzz/run.sh --regressions BUILD         replay tests/fuzz/regressions
#
# Fuzzing starts from the seeds in tests/fuzz/corpus/<target> and writes
# what it finds to BUILD/fuzz-work/<target>/corpus (the seeds are never
# changed); a crashing input lands in BUILD/fuzz-work/<target>/ as
# crash-*, leak-*, timeout-* or oom-*.  Prints one line per target
# (executions, new corpus size, result) and exits 1 if any target failed.
# FUZZ_JOBS (default 1) targets run at once.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [ "${1:-}" = "--regressions" ]; then
    build="$2"
    rc=0
    for dir in "$here"/regressions/*/; do
        [ -d "$dir" ] || continue
        t="$(basename "$dir")"
        for input in "$dir"*; do
            [ -f "$input" ] || continue
            if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                "$build/tests/fuzz/$t" -runs=1 "$input" >/dev/null 2>&1; then
                echo "fixed   $t $(basename "$input")"
            else
                echo "CRASHES $t $(basename "$input")"
                rc=1
            fi
        done
    done
    exit $rc
fi

build="${1:?usage: run.sh BUILD SECONDS [TARGET...]}"
seconds="${2:?usage: run.sh BUILD SECONDS [TARGET...]}"
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for src in "$here"/fuzz_*.c; do
        targets+=("$(basename "$src" .c)")
    done
fi

#  The dictionary of each target: JSON keys and tokens, SSE fields, msgpack
#  headers, or the JSON and SSE ones together for provider streams.
s_dicts () {
    case "$1" in
        fuzz_sse) echo fuzz_sse.dict ;;
        fuzz_provider) echo fuzz_json.dict fuzz_sse.dict ;;
        fuzz_envelope|fuzz_mp|fuzz_mpjson|fuzz_msg) echo fuzz_msgpack.dict ;;
        *) echo fuzz_json.dict ;;
    esac
}

s_run () {
    local t="$1" bin="$build/tests/fuzz/$1" work="$build/fuzz-work/$1"
    mkdir -p "$work/corpus"
    rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*
    local dict="$work/$t.dict"
    : > "$dict"
    for d in $(s_dicts "$t"); do cat "$here/$d" >> "$dict"; done
    if [ ! -x "$bin" ]; then
        echo "$t: not built ($bin)" > "$work/result"
        return
    fi
    local start=$SECONDS
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$here/ubsan.supp"
    #  -timeout: one input running longer is a hang; the outer timeout
    #  catches a target that stops answering altogether.
    timeout -k 10 $((seconds + 120)) "$bin" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -dict="$dict" -artifact_prefix="$work/" \
        "$work/corpus" "$here/corpus/$t" > "$work/log" 2>&1
    local rc=$?
    local execs cov
    execs="$(grep -m1 'stat::number_of_executed_units' "$work/log" | awk '{print $2}')"
    [ -n "$execs" ] || execs="$(grep -oE '^#[0-9]+' "$work/log" | tail -1 | tr -d '#')"
    cov="$(grep -oE 'cov: [0-9]+' "$work/log" | tail -1 | awk '{print $2}')"
    local verdict=ok
    if [ $rc -ne 0 ] || ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* >/dev/null 2>&1; then
        verdict="FAILED (rc $rc): $(ls "$work" | grep -E '^(crash|leak|timeout|oom)-' | head -3 | tr '\n' ' ')see $work/log"
    fi
    printf '%-22s %10s execs %6s cov %5ss  %s\n' "$t" "${execs:-?}" "${cov:-?}" \
        $((SECONDS - start)) "$verdict" > "$work/result"
}

jobs_max="${FUZZ_JOBS:-1}"
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n
    done
    s_run "$t" &
done
wait

failed=0
for t in "${targets[@]}"; do
    cat "$build/fuzz-work/$t/result"
    grep -q 'FAILED\|not built' "$build/fuzz-work/$t/result" && failed=1
done
if [ $failed -ne 0 ]; then
    echo "fuzz: some target failed; the first report:"
    for t in "${targets[@]}"; do
        if grep -q FAILED "$build/fuzz-work/$t/result"; then
            grep -m1 -A30 -E 'ERROR:|runtime error|broken promise|Timeout|out-of-memory' \
                "$build/fuzz-work/$t/log" | head -40
            break
        fi
    done
fi
exit $failed
