#!/usr/bin/env bash
# REST under churn: GET /api/v2/services?fields=* on 50 services while their backends flap
# (about 200 state changes a second), next to the same daemon with its backends steady, in
# the same run, alternating. Prints requests per second for both, the changes per second
# actually published (from the daemon's metrics), and the ratio.
#
# Needs wrk, curl and python3 (Debian: apt-get install wrk curl python3).
# Usage: bench/services-churn.sh [duration, default 10s] [connections, default 50]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
duration=${1:-10s}
connections=${2:-50}
services=50

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk curl python3)" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
backends=""
cleanup() {
    [ -n "$backends" ] && kill "$backends" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet
sw_port=18490
admin_port=18491
base_port=18500

# The backends: $services loopback listeners, held open (steady) or closed and reopened
# every 250 ms (churn: each service changes 4 times a second). Bounded: they stop by
# themselves after 10 minutes.
cat > "$work/backends.py" <<'PY'
import socket, sys, time
mode, base, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def open_all():
    socks = []
    for port in range(base, base + count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(64)
        socks.append(s)
    return socks
end = time.monotonic() + 600
socks = open_all()
while time.monotonic() < end:
    time.sleep(0.25)
    if mode == "churn":
        if socks:
            for s in socks:
                s.close()
            socks = []
        else:
            socks = open_all()
PY
backends_in() {
    [ -n "$backends" ] && { kill "$backends" 2>/dev/null || true; wait "$backends" 2>/dev/null || true; }
    python3 "$work/backends.py" "$1" "$base_port" "$services" &
    backends=$!
}

hash=$(echo "bench-password" | ./target/release/servicewatch hash-password)
{
    printf '[[contact_center]]\nid = "all"\nfeatures = ["api-voice"]\n'
    printf '[[user]]\nname = "bench"\npassword = "%s"\nroles = ["agent"]\ncontact_center = "all"\n' "$hash"
    printf '[server]\nlisten = "127.0.0.1:%s"\nworkers = 1\n[admin]\nlisten = "127.0.0.1:%s"\n' "$sw_port" "$admin_port"
    # Probed often enough to see every flap, the same in both modes.
    printf '[checks]\ninterval = "50ms"\ndown_interval = "50ms"\ntimeout = "100ms"\nrise = 1\nfall = 1\njitter = 0.0\n'
    for i in $(seq 0 $((services - 1))); do
        printf '[[service]]\nid = "sips%s"\nname = "SIPS%s"\ntype = "Voice"\n' "$i" "$i"
        printf 'attributes = { sipPort = 5060, publicHost = "sip%s.example.com" }\n' "$i"
        printf 'primary = { host = "127.0.0.1", port = %s }\n' "$((base_port + i))"
    done
} > "$work/servicewatch.toml"
backends_in steady
RUST_LOG=warn ./target/release/servicewatch --config "$work/servicewatch.toml" &
pids+=($!)

url="http://127.0.0.1:$sw_port/api/v2/services?fields=*"
wait_listed "$url" "$services"
cookie=$(session_cookie "$url")

changes() { curl -s "http://127.0.0.1:$admin_port/metrics" | awk '/^servicewatch_service_changes_total / {print $2}'; }
rps() { wrk -t1 -c"$connections" -d"$duration" -H "Cookie: $cookie" "$url" | awk '/Requests\/sec/ {print $2}'; }
seconds=${duration%s}

echo "$services services; wrk -t1 -c$connections -d$duration, session cookie"
# Alternate, three times each, and take the medians: single wrk runs on a shared machine
# vary by a third.
quiet=(); churn=(); rates=()
for _ in 1 2 3; do
    backends_in steady; sleep 1
    quiet+=("$(rps)")
    backends_in churn; sleep 1
    before=$(changes); churn+=("$(rps)"); after=$(changes)
    rates+=("$(awk -v a="$after" -v b="$before" -v s="$seconds" 'BEGIN {print (a - b) / s}')")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
q=$(median "${quiet[@]}"); c=$(median "${churn[@]}")
echo "backends steady:   $q req/s (median of ${quiet[*]})"
echo "backends flapping: $c req/s (median of ${churn[*]}), ${rates[*]} changes/s published"
awk -v q="$q" -v c="$c" 'BEGIN { printf "ratio: churn/steady %.2f\n", c / q }'
