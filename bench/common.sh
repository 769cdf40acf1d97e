# Shared by the REST benchmarks: sourced, not run.

# wait_listed URL COUNT: waits (30 s at most) until GET URL, as the bench user, lists COUNT
# services. Services are listed once probed.
wait_listed() {
    local listed
    for _ in $(seq 1 300); do
        listed=$(curl -sf -u bench:bench-password "$1" | grep -o '"id":' | wc -l || true)
        [ "$listed" -eq "$2" ] && return 0
        sleep 0.1
    done
    echo "not every service listed within 30 s" >&2
    return 1
}

# session_cookie URL: the session cookie a Basic login on URL sets (name=value).
session_cookie() {
    curl -s -u bench:bench-password -D - -o /dev/null "$1" | awk -F'[:;] *' 'tolower($1) == "set-cookie" {print $2}'
}
