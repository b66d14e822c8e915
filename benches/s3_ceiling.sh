#!/usr/bin/env bash
# The object store's own ceiling on this machine: the AWS CLI (no registry in between) copies a
# blob into and out of a fresh 3-node Garage cluster (benches/garage.sh), the same store
# `benches/compare.sh --storage s3` measures both registries on. Prints MB/s for a multipart
# upload (16 MiB parts, as layerstore's default) and for a download to /dev/null.
#
# Usage: benches/s3_ceiling.sh [SIZE_MIB]   (default 512)
# Needs the `aws` CLI: AWS=path/to/aws (e.g. `python3 -m venv v && v/bin/pip install awscli`).
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-512}
aws=${AWS:-aws}
work=$(mktemp -d /tmp/layerstore-ceiling.XXXXXX)
trap 'benches/garage.sh stop "$work/garage" 2>/dev/null || true; rm -rf "$work"' EXIT
eval "$(GARAGE_PORT_BASE=${GARAGE_PORT_BASE:-39600} benches/garage.sh start "$work/garage")"
export AWS_DEFAULT_REGION=$AWS_REGION # the CLI v1 reads this one
head -c $((mib << 20)) /dev/urandom >"$work/blob"
"$aws" configure set default.s3.multipart_chunksize 16MB
"$aws" configure set default.s3.multipart_threshold 16MB
rate() { python3 -c "print(f'{$mib * 1048576 / ($2 - $1) / 1e6:.1f}')"; }
for round in 1 2; do
    t0=$(date +%s.%N)
    "$aws" --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors "$work/blob" "s3://$LAYERSTORE_BUCKET/ceiling/$round"
    t1=$(date +%s.%N)
    "$aws" --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors "s3://$LAYERSTORE_BUCKET/ceiling/$round" - >/dev/null
    t2=$(date +%s.%N)
    echo "round $round: upload $(rate "$t0" "$t1") MB/s, download $(rate "$t1" "$t2") MB/s ($mib MiB)"
done
