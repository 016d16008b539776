#!/usr/bin/env bash
# Installs the Debian packages clawgate needs to build, test and benchmark,
# only those missing.  Idempotent; needs root (or sudo) only when something
# is missing.
set -euo pipefail
pkgs=(cmake make gcc pkg-config curl
      libzmq3-dev libczmq-dev libcivetweb-dev libmsgpack-dev libcjson-dev
      libcurl4-openssl-dev libcriterion-dev libsqlite3-dev libpq-dev libssl-dev)
[ "${1:-}" = "--bench" ] && pkgs+=(wrk sqlite3 chromium)
# The browser actor's tests drive a real headless Chromium (Debian's).
# The fuzz targets (tests/fuzz) need clang and its libFuzzer/sanitizer
# runtimes (Debian 12: clang 14, libclang-rt-14-dev).
[ "${1:-}" = "--test" ] && pkgs+=(chromium clang clang-format libclang-rt-14-dev)
# libssl-dev (above): the chat stand-ins that every build makes
# (tests/standin) sign and serve TLS with OpenSSL; the gateway itself loads
# libssl at run time (actors/ssl_lazy.c).  The Discord test makes its
# certificates with the openssl command.
[ "${1:-}" = "--test" ] && pkgs+=(openssl)
# The client-library tests run the official OpenAI SDK on Node.js; a machine
# that already has node (e.g. from NodeSource) keeps it.
if [ "${1:-}" = "--test" ] && ! command -v npm >/dev/null 2>&1; then
    pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
