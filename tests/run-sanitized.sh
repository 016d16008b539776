#!/usr/bin/env bash
# Runs ctest in an ASan+UBSan build and fails on any sanitizer report, even
# one that criterion's forked test processes would not turn into a failure.
set -uo pipefail
cd "$1"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --output-on-failure -V > ctest-sanitized.log 2>&1
rc=$?
grep -E '^ *[0-9]+/[0-9]+ Test|tests passed|Synthesis' ctest-sanitized.log
if grep -qE 'LeakSanitizer|runtime error:|ERROR: AddressSanitizer' ctest-sanitized.log; then
    echo "sanitizer reports in $1/ctest-sanitized.log:"
    grep -E -B2 -A25 'LeakSanitizer|runtime error:|ERROR: AddressSanitizer' ctest-sanitized.log | head -120
    exit 1
fi
[ $rc -eq 0 ] || grep -E -B5 -A20 'FAIL|Assertion Failed' ctest-sanitized.log | head -120
exit $rc
