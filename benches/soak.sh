#!/usr/bin/env bash
# The one-hour soak (tests/soak.rs, issue 18 item 5) on the filesystem and on S3 (a 3-node
# Garage cluster the test starts) at once: two test processes, DURATION seconds each (default
# 3600), release build. Then plots each run's samples to docs/soak-filesystem.png and
# docs/soak-s3.png (RSS, RssAnon, VmHWM and open fds over time, SIGKILLs marked).
#
#   benches/soak.sh [OUT_DIR]        OUT_DIR (default /tmp/layerstore-soak) gets the CSVs and logs
#   DURATION=600 benches/soak.sh     a shorter run
#   PLOT_ONLY=1 benches/soak.sh      only plot the CSVs already in OUT_DIR
#   STORAGES=s3 benches/soak.sh      only one storage (default "filesystem s3")
#   PLOT_SUFFIX=-x benches/soak.sh   plot to docs/soak-STORAGE-x.png instead
#
# The plots need matplotlib, which is not installed: the script makes a venv in
# /tmp/layerstore-soak-venv and pip installs matplotlib there (PyPI must be reachable), unless
# $PYTHON already imports it. Needs `garage` for S3 (see benches/garage.sh); without it that
# run prints "skipping" and only the filesystem is plotted.
set -euo pipefail

cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-/tmp/layerstore-soak}")
duration=${DURATION:-3600}
mkdir -p "$out"

python=${PYTHON:-/tmp/layerstore-soak-venv/bin/python}
if ! "$python" -c "import matplotlib" 2>/dev/null; then
    python3 -m venv /tmp/layerstore-soak-venv
    python=/tmp/layerstore-soak-venv/bin/python
    "$python" -m pip install --quiet matplotlib
fi

if [ -z "${PLOT_ONLY:-}" ]; then
    cargo build --release --test soak
    status=0
    pids=()
    for storage in ${STORAGES:-filesystem s3}; do
        SOAK_SECS=$duration SOAK_CSV_DIR="$out" \
            cargo test --release --test soak -- --ignored --exact "long_$storage" --nocapture \
            >"$out/soak-$storage.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    grep -h "soak\[" "$out"/soak-*.log | grep -v ": kill at " || true
fi

for storage in ${STORAGES:-filesystem s3}; do
    if [ -s "$out/soak-$storage.csv" ]; then
        png="docs/soak-$storage${PLOT_SUFFIX:-}.png"
        "$python" benches/soak_plot.py "$out/soak-$storage.csv" "$png" "soak on $storage"
        echo "plotted $png"
    fi
done
exit "${status:-0}"
