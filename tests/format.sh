#!/bin/sh
# Formats the tree's C sources with Debian's clang-format and the tree's
# .clang-format, or, with --check, fails naming every file that is not so
# formatted (make test runs the check).  Only files git tracks are looked at,
# so build trees and npm's node_modules never are.
set -eu
cd "$(dirname "$0")/.."
cf=$(command -v clang-format || command -v clang-format-14 || true)
if [ -z "$cf" ]; then
    echo "format: clang-format is missing (apt-get install clang-format)" >&2
    exit 1
fi
files=$(git ls-files '*.c' '*.h')
if [ "${1:-}" = "--check" ]; then
    bad=0
    for f in $files; do
        if ! "$cf" --style=file "$f" | cmp -s - "$f"; then
            echo "format: $f is not formatted (make format; see .clang-format)" >&2
            bad=1
        fi
    done
    [ $bad = 0 ] && echo "format: $(echo "$files" | wc -l) files formatted as .clang-format says"
    exit $bad
fi
# shellcheck disable=SC2086
"$cf" --style=file -i $files
