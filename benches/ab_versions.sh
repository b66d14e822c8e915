#!/usr/bin/env bash
# Two layerstore binaries side by side: for each round and each binary (alternating), a fresh
# `serve` on a fresh root under DIR, then `layerstore bench` (of the second binary) against it.
# Prints one line per scenario and run: binary, scenario, MB/s, operations/s, server CPU s/GiB.
#
# Usage: benches/ab_versions.sh OLD_BIN NEW_BIN DIR ROUNDS SCENARIOS [more `bench` options]
# Environment: SETTLE (default 0): seconds to wait after the sync before each run (61 on ext4
# without a journal, where a run pays for the inodes the one before it freed).
# e.g.   benches/ab_versions.sh /tmp/ls-old target/release/layerstore /tmp 3 push-chunked --chunk-size 1M --blob-size 256M
set -euo pipefail
old=$1 new=$2 dir=$3 rounds=$4 only=$5
shift 5
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for round in $(seq "$rounds"); do
    for label in old new; do
        bin=$old; [ $label = new ] && bin=$new
        root=$(mktemp -d "$dir/ab.XXXXXX")
        port=$(free_port)
        "$bin" serve --listen "127.0.0.1:$port" --root "$root" --secret ab >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
        sync
        sleep "${SETTLE:-0}"
        "$new" bench --url "http://127.0.0.1:$port" --only "$only" --server-pid "$pid" --json "$@" |
            python3 -c '
import json, sys
label, round_ = sys.argv[1], sys.argv[2]
for s in json.load(sys.stdin)["scenarios"]:
    cpu = (s.get("server") or {}).get("cpu_seconds_per_gib")
    print("round %s %s %s %.1f MB/s %.1f ops/s cpu/GiB %s" % (round_, label, s["scenario"],
          s["megabytes_per_second"], s["operations_per_second"], cpu))' "$label" "$round"
        kill "$pid"; wait "$pid" 2>/dev/null || true
        rm -rf "$root"
    done
done
