#!/usr/bin/env bash
# Every measurement of docs/PERFORMANCE.md, in one command, each next to its reference in
# the same run. `--quick` (under 10 minutes on 2 cores) runs smaller sizes and shorter
# windows; without it, the sizes of the table.
#
# Installs what it needs when run as root on Debian (wrk, nginx-light, haproxy, curl), and
# Faye, the fan-out's reference, with the interop tests' clients (needs Node.js and npm;
# without them the fan-out runs alone and says so). The alerts' reference, Alertmanager, is
# not installed here (its package starts a service): without it that bench says it skipped it.
# Usage: bench/run-all.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
[ "${1:-}" = "--quick" ] && quick=true

missing=()
for tool in wrk nginx haproxy curl python3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        apt-get install -y -qq wrk nginx-light haproxy curl python3 >/dev/null
    else
        echo "needs: ${missing[*]} (apt-get install wrk nginx-light haproxy curl python3)" >&2
        exit 2
    fi
fi
if command -v node >/dev/null && command -v npm >/dev/null; then
    bash tests/interop/setup.sh >/dev/null
fi
# Thousands of listeners and sessions: one descriptor each.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if $quick; then
    sizes=(500 2000); burst=(500 subscribers=500); fanout=(2000 10); polling=(2000 10); window=5s
    kills=(20 5 bursts=30 mass=8); alerts=(1000); probes=(2000 5000 window=10 rounds=1)
else
    sizes=(500 1000 2000 5000 10000); burst=(1000 subscribers=1000); fanout=(10000 20); polling=(2000 10); window=10s
    kills=(100 20 bursts=80 mass=10); alerts=(1000 5000); probes=(2000 5000 10000 window=30 rounds=2)
fi

echo "== services: start, mass outage, recovery, CPU at rest next to HAProxy"
cargo bench --quiet --bench scale -- "${sizes[@]}" 2>/dev/null
echo "== probes measured apart: listeners that accept and close, each prober alone, next to HAProxy"
cargo bench --quiet --bench probes -- "${probes[@]}" 2>/dev/null
echo "== bursts: every service changes at once, every subscriber hears each change once"
cargo bench --quiet --bench scale -- "${burst[@]}" 2>/dev/null
echo "== fan-out: one change to many WebSocket subscribers, next to Faye"
cargo bench --quiet --bench fanout -- "${fanout[@]}" 2>/dev/null
echo "== fan-out to long-polling subscribers, next to Faye"
BENCH_TRANSPORT=long-polling cargo bench --quiet --bench fanout -- "${polling[@]}" 2>/dev/null
$quick || BENCH_TRANSPORT=long-polling cargo bench --quiet --bench fanout -- 10000 6 2>/dev/null
echo "== memory at size: 10,000 services and 10,000 subscribers"
$quick || BENCH_REFERENCE=none cargo bench --quiet --bench fanout -- 10000 6 10000 2>/dev/null
echo "== detection: a backend's death heard by a subscriber, watched and not; bursts of deaths"
cargo bench --quiet --bench detection -- "${kills[@]}" 2>/dev/null
echo "== alerts: a mass outage told to two webhook receivers, next to Alertmanager"
cargo bench --quiet --bench alerts -- "${alerts[@]}" 2>/dev/null
echo "== REST: the whole list at 5,000 services next to nginx"
SERVICES=5000 bench/services-throughput.sh "$window" 50
echo "== REST under churn"
bench/services-churn.sh "$window" 50
