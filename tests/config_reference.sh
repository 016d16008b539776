#!/bin/sh
#  config_reference.sh CLAWGATE README [--update]
#
#  Fails, showing the difference, when README's configuration reference
#  (the lines between <!-- config-reference:begin --> and
#  <!-- config-reference:end -->) is not what `clawgate config-keys` prints
#  from the key table (config/keys.c).  With --update, writes the table
#  between the markers instead, leaving every other line alone.
set -eu
bin=$1
readme=$2
begin='<!-- config-reference:begin -->'
end='<!-- config-reference:end -->'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" config-keys > "$tmp/table"
if [ "$(grep -cxF "$begin" "$readme")" != 1 ] || [ "$(grep -cxF "$end" "$readme")" != 1 ]; then
    echo "$readme: needs one '$begin' line and one '$end' line" >&2
    exit 1
fi
if [ "${3:-}" = --update ]; then
    awk -v b="$begin" -v e="$end" -v t="$tmp/table" '
        $0 == e { skip = 0 }
        !skip   { print }
        $0 == b { while ((getline line < t) > 0) print line; skip = 1 }
    ' "$readme" > "$tmp/readme"
    cat "$tmp/readme" > "$readme"
    exit 0
fi
awk -v b="$begin" -v e="$end" '$0 == e { inside = 0 } inside { print } $0 == b { inside = 1 }' \
    "$readme" > "$tmp/readme_table"
if ! diff -u "$tmp/readme_table" "$tmp/table"; then
    echo "$readme's configuration reference differs from 'clawgate config-keys'" \
         "(the key table, config/keys.c): run" >&2
    echo "  sh tests/config_reference.sh $bin $readme --update" >&2
    exit 1
fi
