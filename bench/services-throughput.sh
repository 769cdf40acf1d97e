#!/usr/bin/env bash
# Throughput of GET /api/v2/services?fields=*: servicewatch next to nginx serving the same
# bytes from a file, in the same run, on loopback, each with one worker. Prints requests per
# second for both and the ratio.
#
# Needs wrk, nginx and curl (Debian: apt-get install wrk nginx-light curl).
# Usage: bench/services-throughput.sh [duration, default 10s] [connections, default 50]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
duration=${1:-10s}
connections=${2:-50}
services=${SERVICES:-12}

for tool in wrk nginx curl; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk nginx-light curl)" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${BENCH_DEBUG:-}" ] && set -x

cargo build --release --quiet
sw_port=18480
ng_port=18481

# A configuration like a mid-size site: $services services with attributes, probed rarely so
# that probes do not compete with the benchmark; one user with every feature.
hash=$(echo "bench-password" | ./target/release/servicewatch hash-password)
{
    printf '[[contact_center]]\nid = "all"\nfeatures = ["api-voice"]\n'
    printf '[[user]]\nname = "bench"\npassword = "%s"\nroles = ["agent"]\ncontact_center = "all"\n' "$hash"
    printf '[server]\nlisten = "127.0.0.1:%s"\nworkers = 1\n[admin]\nenabled = false\n[checks]\ninterval = "60s"\n' "$sw_port"
    for i in $(seq 1 "$services"); do
        printf '[[service]]\nid = "sips%s"\nname = "SIPS%s"\ntype = "Voice"\n' "$i" "$i"
        printf 'attributes = { sipPort = 5060, publicHost = "sip%s.example.com" }\n' "$i"
        printf 'primary = { host = "127.0.0.1", port = 1 }\nbackup = { host = "127.0.0.1", port = 2 }\n'
    done
} > "$work/servicewatch.toml"
RUST_LOG=warn ./target/release/servicewatch --config "$work/servicewatch.toml" &
pids+=($!)

url="http://127.0.0.1:$sw_port/api/v2/services?fields=*"
wait_listed "$url" "$services"
mkdir -p "$work/www/api/v2"
curl -sf -u bench:bench-password "$url" -o "$work/www/api/v2/services"
# The session cookie a Basic login sets.
cookie=$(session_cookie "$url")
basic="Authorization: Basic $(printf 'bench:bench-password' | base64)"
# nginx workers run as an unprivileged user: let them read the file.
chmod -R a+rX "$work"

cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    default_type application/json;
    server {
        listen 127.0.0.1:$ng_port;
        root $work/www;
    }
}
CONF
nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ng_port/api/v2/services" -o /dev/null && break; sleep 0.1; done
cmp -s <(curl -s -u bench:bench-password "$url") <(curl -s "http://127.0.0.1:$ng_port/api/v2/services?fields=*") \
    || { echo "nginx does not serve the same bytes" >&2; exit 1; }

rps() { wrk -t1 -c"$connections" -d"$duration" "$@" | awk '/Requests\/sec/ {print $2}'; }
echo "body: $(wc -c < "$work/www/api/v2/services") bytes, $services services; wrk -t1 -c$connections -d$duration"
# Alternate to spread the machine's noise over all three.
b1=$(rps -H "$basic" "$url"); c1=$(rps -H "Cookie: $cookie" "$url"); n1=$(rps "http://127.0.0.1:$ng_port/api/v2/services?fields=*")
b2=$(rps -H "$basic" "$url"); c2=$(rps -H "Cookie: $cookie" "$url"); n2=$(rps "http://127.0.0.1:$ng_port/api/v2/services?fields=*")
awk -v b1="$b1" -v b2="$b2" -v c1="$c1" -v c2="$c2" -v n1="$n1" -v n2="$n2" 'BEGIN {
    b = (b1 + b2) / 2; c = (c1 + c2) / 2; n = (n1 + n2) / 2;
    printf "servicewatch, Basic on every request: %.0f req/s (%s, %s)\n", b, b1, b2
    printf "servicewatch, session cookie:         %.0f req/s (%s, %s)\n", c, c1, c2
    printf "nginx, same bytes from a file:        %.0f req/s (%s, %s)\n", n, n1, n2
    printf "ratios: cookie/nginx %.2f, Basic/cookie %.2f\n", c / n, b / c
}'
