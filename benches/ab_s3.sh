#!/usr/bin/env bash
# layerstore binaries side by side on S3: one fresh 3-node Garage cluster (benches/garage.sh);
# for each round and each binary in turn, `serve` on its own prefix of the bucket, then
# `layerstore bench` (of that binary) against it. One line per scenario and run: binary,
# scenario, MB/s, operations/s, server CPU s/GiB.
#
# Usage: benches/ab_s3.sh ROUNDS SCENARIOS BIN... (e.g. benches/ab_s3.sh 3 pull,range-get OLD NEW)
# Environment: BLOB_SIZE (512M), GARAGE_DIR (/tmp/layerstore-ab-garage).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1 only=$2
shift 2
garage_dir=${GARAGE_DIR:-/tmp/layerstore-ab-garage}
eval "$(benches/garage.sh start "$garage_dir")"
trap 'benches/garage.sh stop "$garage_dir" 2>/dev/null' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for round in $(seq "$rounds"); do
    for bin in "$@"; do
        label=$(basename "$bin")
        port=$(free_port)
        "$bin" serve --listen "127.0.0.1:$port" --secret ab \
            --storage "s3://$LAYERSTORE_BUCKET/ab-$label-$round" >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
        "$bin" bench --url "http://127.0.0.1:$port" --only "$only" --blob-size "${BLOB_SIZE:-512M}" \
            --server-pid "$pid" --json | python3 -c '
import json, sys
label, round_ = sys.argv[1], sys.argv[2]
for s in json.load(sys.stdin)["scenarios"]:
    cpu = (s.get("server") or {}).get("cpu_seconds_per_gib")
    print("round %s %s %s %.1f MB/s %.1f ops/s cpu/GiB %s" % (round_, label, s["scenario"],
          s["megabytes_per_second"], s["operations_per_second"], cpu))' "$label" "$round"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
