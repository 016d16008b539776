#!/usr/bin/env bash
# `make run`: serve on 127.0.0.1:18789 in the foreground and show the token.
set -euo pipefail
bin="$1"
state="${CLAWGATE_STATE_DIR:-$HOME/.clawgate}"
if [ -z "${CLAWGATE_TOKEN:-}" ] && [ -s "$state/token" ]; then
    echo "clawgate: token (from $state/token): $(cat "$state/token")"
fi
echo "clawgate: try  curl -H \"Authorization: Bearer <token>\" http://127.0.0.1:18789/status"
exec "$bin" serve --bind 127.0.0.1 --port 18789
