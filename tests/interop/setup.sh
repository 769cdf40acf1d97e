#!/usr/bin/env bash
# Installs the real CometD clients that tests/interop.rs drives: the npm packages into
# tests/interop/node_modules (from package-lock.json; playwright-core drives the browser),
# Python's aiocometd-ng into a virtual environment at target/interop-venv, and Debian's
# Chromium when it is missing and this runs as root with apt-get; and the SMTP server that
# tests/receivers.rs sends to (aiosmtpd, in the same virtual environment). Idempotent and
# quick once done. Needs Node.js 18+ with npm, and python3 with venv.
#
# `setup.sh python` sets up the virtual environment alone (all tests/receivers.rs needs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/target/interop-venv"

install_python() {
    command -v python3 >/dev/null || { echo "the interop tests need python3" >&2; exit 1; }
    if ! "$venv/bin/python" -c "import aiocometd_ng, aiosmtpd" 2>/dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    fi
}

if [ "${1:-}" = python ]; then
    install_python
    exit 0
fi

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

install_python
