#!/usr/bin/env bash
# Runs schemathesis against a live daemon: every operation of docs/openapi.json (as the
# daemon serves it) with generated valid and invalid input; fails on a 5xx, or on an answer
# (status, content type, headers, body) that the description does not allow.
#
#   bash tests/openapi/schemathesis.sh              # one minute
#   bash tests/openapi/schemathesis.sh --short      # 20 s (what tests/openapi.rs runs)
#   bash tests/openapi/schemathesis.sh --long       # 10 minutes
#
# The daemon is `servicewatch demo` (stand-in backends that fail and recover every 2 s, so
# answers are given while states change), built in debug unless SW_BIN names a binary. Needs python3 with venv; installs schemathesis into target/schemathesis-venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

max_time=60
case "${1:-}" in
    --short) max_time=20 ;;
    --long) max_time=600 ;;
esac

venv="$root/target/schemathesis-venv"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

bin=${SW_BIN:-}
if [ -z "$bin" ]; then
    (cd "$root" && cargo build --quiet)
    bin="$root/target/debug/servicewatch"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin=$(free_port)
out=$(mktemp)
# schemathesis tries every operation with wrong credentials; past the login throttle's
# bound the daemon answers them 429 (tests/auth.rs tests that), which its check on wrong
# credentials does not expect: the bound is raised for this run.
SERVICEWATCH_AUTH__MAX_FAILURES=1000000 \
    "$bin" demo --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" --step 2s >"$out" 2>/dev/null &
daemon=$!
trap 'kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; rm -f "$out"' EXIT

password=""
for _ in $(seq 1 100); do
    password=$(sed -n 's/.*user demo, password \([^ ]*\).*/\1/p' "$out" | head -1)
    [ -n "$password" ] && break
    sleep 0.1
done
[ -n "$password" ] || { echo "the demo did not start" >&2; cat "$out" >&2; exit 1; }

# The WebSocket upgrade (GET /notifications) is left out: a 101 hands the connection to
# another protocol, which tests/notifications.rs and the interop tests exercise.
# One worker: with two, Hypothesis describing its strategies calls compile() from two
# threads at once, which CPython 3.11 can fail with "AST constructor recursion depth
# mismatch" (CPython gh-106905), a crash of the tool that says nothing of the daemon.
"$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "http://127.0.0.1:$port/api/v2/openapi.json" \
    --exclude-operation-id notificationsWebSocket \
    --auth "demo:$password" \
    --checks all \
    --max-time "$max_time" \
    --workers 1 \
    --suppress-health-check all \
    --no-color
