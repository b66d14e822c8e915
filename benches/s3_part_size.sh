#!/usr/bin/env bash
# Chooses the S3 part size by measurement: on one fresh 3-node Garage cluster
# (benches/garage.sh), `layerstore serve` runs once per part size and `layerstore bench` pushes
# (monolithic and chunked) and pulls one blob; prints MB/s, server CPU s/GiB and peak RSS.
#
# Usage: benches/s3_part_size.sh [PART_SIZES...]   (default: 5MiB 8MiB 16MiB 32MiB 64MiB)
# Environment: BLOB_SIZE (default 512M), ROUNDS (default 2; medians), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$(pwd)/target}
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(5MiB 8MiB 16MiB 32MiB 64MiB)
blob=${BLOB_SIZE:-512M}
rounds=${ROUNDS:-2}

cargo build --release --quiet
bin=$target/release/layerstore
work=$(mktemp -d /tmp/layerstore-parts.XXXXXX)
server=
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    benches/garage.sh stop "$work/garage" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
eval "$(GARAGE_PORT_BASE=${GARAGE_PORT_BASE:-39200} benches/garage.sh start "$work/garage")"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

echo "| part size | push MB/s | chunked MB/s | pull MB/s | server CPU s/GiB (push) | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for size in "${sizes[@]}"; do
    printf 'storage = "s3://%s/parts-%s"\n[s3]\npart_size = "%s"\n' "$LAYERSTORE_BUCKET" "$size" "$size" >"$work/config.toml"
    for round in $(seq "$rounds"); do
        "$bin" serve --listen "127.0.0.1:$port" --config "$work/config.toml" --secret parts \
            >"$work/serve.log" 2>&1 &
        server=$!
        for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
        "$bin" bench --url "http://127.0.0.1:$port" --only push-monolithic,push-chunked,pull \
            --blob-size "$blob" --server-pid "$server" --json >"$work/$size-$round.json"
        kill "$server"; wait "$server" 2>/dev/null || true; server=
    done
    python3 - "$work" "$size" "$rounds" <<'PY'
import json, statistics, sys
work, size, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = [json.load(open(f"{work}/{size}-{r}.json")) for r in range(1, rounds + 1)]
def med(name, *key):
    vals = []
    for run in runs:
        for s in run["scenarios"]:
            if s["scenario"] == name and s["status"] == "passed":
                v = s
                for k in key:
                    v = v.get(k) if isinstance(v, dict) else None
                if v is not None:
                    vals.append(v)
    return statistics.median(vals) if vals else float("nan")
rss = max((s.get("server") or {}).get("peak_rss_bytes") or 0 for r in runs for s in r["scenarios"]) / 2**20
print(f"| {size} | {med('push-monolithic','megabytes_per_second'):.0f} | {med('push-chunked','megabytes_per_second'):.0f} "
      f"| {med('pull','megabytes_per_second'):.0f} | {med('push-monolithic','server','cpu_seconds_per_gib'):.2f} | {rss:.0f} |")
PY
done
