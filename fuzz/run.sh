#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints how many inputs each tried.
#
#   bash fuzz/run.sh            # each target for 60 s
#   bash fuzz/run.sh --long     # each target for at least 1,000,000 runs (at most 30 min)
#   bash fuzz/run.sh TARGET...  # only these targets
#
# Needs the nightly toolchain (libFuzzer's sanitizer flags) and cargo-fuzz; installs
# cargo-fuzz when it is missing. The corpus grows under fuzz/corpus/ (not kept in git);
# inputs worth keeping go to fuzz/regressions/<target>/, which `cargo test` replays on
# stable (tests/fuzz_regressions.rs). A failure leaves its input under fuzz/artifacts/
# and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")"

mode=quick
targets=()
for arg in "$@"; do
    case "$arg" in
        --long) mode=long ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) targets+=("$arg") ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    targets=(bayeux_batch services_query config http_answer cql_frame sip_response)
fi

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

case "$mode" in
    quick) limits=(-max_total_time=60) ;;
    long) limits=(-runs=1000000 -max_total_time=1800) ;;
esac

cargo +nightly fuzz build -O
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    echo "== $target (${limits[*]})"
    if ! cargo +nightly fuzz run -O "$target" "corpus/$target" "regressions/$target" -- \
        "${limits[@]}" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log"
        echo "$target FAILED; the input is under fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log")
    secs=$(awk '/Done [0-9]+ runs in/ {print $(NF-1)}' "$log")
    corpus=$(find "corpus/$target" -type f | wc -l)
    summary+=("$target: $runs runs in ${secs:-?} s, nothing found; corpus $corpus inputs")
    rm -f "$log"
done
printf '%s\n' "${summary[@]}"
