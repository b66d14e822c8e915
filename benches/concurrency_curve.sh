#!/usr/bin/env bash
# The concurrency curve: layerstore and distribution 2.8 side by side (benches/compare.sh, fresh
# servers per level) at 64, 256 and 1024 concurrent clients, for small blobs (64 KiB pushes, one
# worker per client) and large reads (1 MiB range GETs of a 256 MiB blob, one connection per
# client): throughput, p99 latency, server CPU, peak RSS and peak open file descriptors. Every
# answer is verified: a failed request fails the scenario, and the table says so.
#
# Usage: benches/concurrency_curve.sh [LEVELS (default "64 256 1024")] [SECONDS (default 10)]
# Prints one compare.sh table per level (NO_DOCS=1: nothing is appended to docs/).
set -euo pipefail
cd "$(dirname "$0")/.."
levels=${1:-64 256 1024}
seconds=${2:-10}
# 1024 clients need 1024 sockets on each side, plus the servers' own files.
ulimit -n "$(ulimit -Hn)"
for level in $levels; do
    echo "### $level concurrent clients"
    echo
    NO_DOCS=1 ROUNDS=${ROUNDS:-1} benches/compare.sh --only small-push,range-get \
        --workers "$level" --connections "$level" --small-seconds "$seconds" \
        --range-seconds "$seconds" --range-size 1M --blob-size 256M 2>/dev/null |
        sed -n '/^Server peak open/,/^$/p; /^| /p'
    echo
done
