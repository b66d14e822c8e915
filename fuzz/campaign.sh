#!/usr/bin/env bash
# A fuzzing campaign: run each named target for SECONDS (default 1800) of wall time, seeded
# with its committed regressions, at low priority, and print libFuzzer's final statistics.
#
# Usage: fuzz/campaign.sh [SECONDS] TARGET...
# Logs go to $LOG_DIR (default /tmp/layerstore-fuzz); findings to fuzz/artifacts/TARGET/.
# Targets run in parallel, one process each: on a 2-core box, pass at most a few at a time.
set -euo pipefail
cd "$(dirname "$0")"
seconds=1800
if [[ ${1:-} =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
log_dir=${LOG_DIR:-/tmp/layerstore-fuzz}
mkdir -p "$log_dir"
cargo fuzz build -s none
for target in "$@"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    seeds=()
    [[ -d regressions/$target ]] && seeds+=("regressions/$target")
    nice -n 19 cargo fuzz run -s none "$target" "corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 \
        >"$log_dir/$target.log" 2>&1 &
done
wait
for target in "$@"; do
    echo "== $target"
    grep -E '^(stat::|Done|==[0-9]+== ERROR|SUMMARY)' "$log_dir/$target.log" || tail -3 "$log_dir/$target.log"
done
