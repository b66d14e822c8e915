#!/usr/bin/env bash
# Issue 20's table in one run on this machine: every figure measured side by side, each script
# alternating its subjects and printing medians.
#   1. `layerstore digest` and `tarsum --version v1` against `openssl dgst -sha256` (1 GiB).
#   2. The floors. tmpfs, 1 GiB: a minimal receiver's CPU per GiB, the same receiver hashing on
#      its thread and on a second one (CPU and MB/s: the fastest a one-request push goes here),
#      and `openssl dgst`'s CPU. Disk: durable 64 KiB blobs per second with no HTTP
#      (`durable_floor.py`, 8 workers, the six fsyncs of distribution's layout).
#   3. layerstore against distribution 2.8 on disk (`compare.sh`: pushes, chunked pushes, small
#      pushes, pulls, range GETs, server CPU and peak RSS, `dd` and `openssl speed` beside them).
#   4. The same pushes on tmpfs.
#   5. layerstore's monolithic push on tmpfs alone, a fresh root per push deleted after it
#      (`ab_versions.sh` with one binary twice), beside `openssl speed`: on a VM that hands
#      freed memory back to its host (virtio free page reporting), the first touch of a page
#      costs a fault in the host, and step 4's roots, which keep every blob, keep taking new
#      pages (`dd` to tmpfs: 0.5 GB/s on such pages, 3.5 GB/s on warm ones). Step 5 reuses the
#      pages the last run freed: what the server costs, not what the VM costs.
#   6. Pull against nginx `sendfile` (`pull_ceiling.sh`).
# Logs go to OUT (default: a new directory under /tmp); the summary is printed at the end.
#
# Usage: benches/limits.sh [ROUNDS (3)]
# Environment: OUT, SETTLE (61: seconds compare.sh waits after its sync on disk), CARGO_TARGET_DIR,
# WARM_MIB (passed to compare.sh: memory touched and freed before each run; on a VM with free
# page reporting raise /sys/module/page_reporting/parameters/min_free_ms to 60000 for the run,
# or the warmed pages go back to the host before they are used).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=${OUT:-$(mktemp -d /tmp/layerstore-limits.XXXXXX)}
mkdir -p "$out"
export NO_DOCS=1
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/layerstore

step() {
    local name=$1
    shift
    echo "== $name ($(date -u +%H:%M:%SZ)): $*" | tee -a "$out/summary"
    "$@" 2>"$out/$name.err" | tee "$out/$name.log" | tee -a "$out/summary"
}

floor() {
    local file=/dev/shm/layerstore-limits.floor
    head -c 1G /dev/urandom >"$file"
    python3 benches/receive_floor.py "$file" /dev/shm "$rounds"
    python3 benches/receive_floor.py --hash "$file" /dev/shm "$rounds"
    python3 benches/receive_floor.py --hash-thread "$file" /dev/shm "$rounds"
    for _ in $(seq "$rounds"); do
        /usr/bin/time -f 'openssl dgst -sha256 1 GiB: %U s user, %S s system, %e s' \
            openssl dgst -sha256 "$file" 2>&1 >/dev/null
    done
    rm -f "$file"
    for _ in $(seq "$rounds"); do
        sync
        sleep "${SETTLE:-61}"
        python3 benches/durable_floor.py /tmp --seconds 10
    done
}

tmpfs_alone() {
    openssl speed -seconds 2 -evp sha256 2>/dev/null | tail -1
    benches/ab_versions.sh "$bin" "$bin" /dev/shm "$rounds" push-monolithic
    openssl speed -seconds 2 -evp sha256 2>/dev/null | tail -1
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)" |
    tee "$out/summary"
step digest env LAYERSTORE_BIN="$bin" benches/digest_vs_openssl.sh 1024 5
step floor floor
step disk env ROUNDS="$rounds" SETTLE="${SETTLE:-61}" benches/compare.sh
step tmpfs env COMPARE_DIR=/dev/shm ROUNDS="$rounds" DD_MIB=1024 benches/compare.sh \
    --only push-monolithic,push-chunked
step tmpfs-alone tmpfs_alone
step pull env ROUNDS="$rounds" benches/pull_ceiling.sh
echo "logs: $out"
