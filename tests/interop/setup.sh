#!/usr/bin/env bash
# Installs the real CometD clients that tests/interop.rs drives: the npm packages into
# tests/interop/node_modules (from package-lock.json; playwright-core drives the browser),
# Python's aiocometd-ng into a virtual environment at target/interop-venv, and Debian's
# Chromium when it is missing and this runs as root with apt-get. Idempotent and quick once
# done. Needs Node.js 18+ with npm, and python3 with venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for tool in node npm python3; do
    command -v "$tool" >/dev/null || { echo "the interop tests need $tool" >&2; exit 1; }
done

stamp="$here/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ -z "${CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
fi

venv="$root/target/interop-venv"
if ! "$venv/bin/python" -c "import aiocometd_ng" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
