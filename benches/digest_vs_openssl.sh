#!/usr/bin/env bash
# `layerstore digest FILE` and `layerstore tarsum --version v1 FILE` against `openssl dgst
# -sha256` on the same file, page cache warm: wall time, median of ROUNDS alternating runs, and
# the ratios (issue 20's first two figures).
#
# Usage: benches/digest_vs_openssl.sh [SIZE_MIB (1024)] [ROUNDS (5)]
# Environment: LAYERSTORE_BIN (default: target/release/layerstore, built), WORK_DIR (/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
rounds=${2:-5}
bin=${LAYERSTORE_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=${CARGO_TARGET_DIR:-target}/release/layerstore
fi
work=$(mktemp -d "${WORK_DIR:-/tmp}/digest-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# One file of random bytes, and a tar of 8 files of random bytes of the same total size.
head -c "${size_mib}M" /dev/urandom > "$work/blob"
mkdir "$work/files"
for i in 1 2 3 4 5 6 7 8; do
    head -c "$((size_mib / 8))M" /dev/urandom > "$work/files/f$i"
done
tar -C "$work/files" -cf "$work/layer.tar" .
rm -rf "$work/files"
cat "$work/blob" "$work/layer.tar" > /dev/null # warm the page cache

seconds() { # wall seconds of "$@", output discarded
    local start end
    start=$(date +%s.%N)
    "$@" > /dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for _ in $(seq "$rounds"); do
    echo "openssl_blob $(seconds openssl dgst -sha256 "$work/blob")"
    echo "digest $(seconds "$bin" digest "$work/blob")"
    echo "digest_stdin $(seconds sh -c "'$bin' digest - < '$work/blob'")"
    echo "openssl_tar $(seconds openssl dgst -sha256 "$work/layer.tar")"
    echo "tarsum_v1 $(seconds "$bin" tarsum --version v1 "$work/layer.tar")"
done > "$work/times"

m() { awk -v k="$1" '$1 == k {print $2}' "$work/times" | median; }
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; ${size_mib} MiB, median of $rounds"
printf "%-14s %8.3f s\n" openssl "$(m openssl_blob)" digest "$(m digest)" "digest -" "$(m digest_stdin)" \
    "openssl (tar)" "$(m openssl_tar)" "tarsum v1" "$(m tarsum_v1)"
printf "digest / openssl:    %.3f\n" "$(echo "$(m digest) / $(m openssl_blob)" | bc -l)"
printf "digest - / openssl:  %.3f\n" "$(echo "$(m digest_stdin) / $(m openssl_blob)" | bc -l)"
printf "tarsum v1 / openssl: %.3f\n" "$(echo "$(m tarsum_v1) / $(m openssl_tar)" | bc -l)"
