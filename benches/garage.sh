#!/usr/bin/env bash
# A 3-node Garage cluster (S3-compatible object store) on loopback, for benchmarking the S3
# storage by hand: the same kind of cluster tests/common/garage.rs starts for the tests.
#
#   benches/garage.sh [start] [DIR]   start it (data in DIR, default /tmp/layerstore-garage) and
#                                     print the `export ...` lines for the S3 client
#   benches/garage.sh stop [DIR]      kill the nodes and delete their data
#
#   eval "$(benches/garage.sh)"       start and export the settings into this shell
#
# Node i listens on PORT_BASE+10*i + 0 (rpc), 1 (s3 api), 3 (admin); PORT_BASE is $GARAGE_PORT_BASE,
# default 39000. The binary is $LAYERSTORE_GARAGE, else `garage` on PATH, else ~/.cargo/bin/garage
# (`cargo install garage --version 2.5.0 --locked`). Garage is AGPL: it only ever runs as a
# separate process. Everything but the export lines goes to stderr.
set -euo pipefail

cmd=start
case "${1:-}" in start | stop) cmd=$1; shift ;; esac
dir=$(realpath -m "${1:-/tmp/layerstore-garage}")
base=${GARAGE_PORT_BASE:-39000}
bucket=${LAYERSTORE_BUCKET:-layerstore}
garage=${LAYERSTORE_GARAGE:-$(command -v garage || echo ~/.cargo/bin/garage)}

stop() {
    for i in 0 1 2; do
        if [ -f "$dir/node$i/pid" ]; then kill -9 "$(cat "$dir/node$i/pid")" 2>/dev/null || true; fi
    done
    # Only what start created: DIR itself may be anything.
    rm -rf "$dir"/node{0,1,2} "$dir/env"
    rmdir "$dir" 2>/dev/null || true
}
if [ "$cmd" = stop ]; then stop; echo "stopped, removed $dir/node*" >&2; exit 0; fi

[ -x "$garage" ] || { echo "garage not found (set LAYERSTORE_GARAGE or cargo install garage)" >&2; exit 1; }
[ ! -e "$dir/node0" ] || { echo "$dir/node0 exists: run '$0 stop $dir' first" >&2; exit 1; }
hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
retry() { for _ in $(seq 200); do "$@" && return; sleep 0.05; done; false; } # up to ~10 s
secret=$(hex 32)
start_ns=$(date +%s%N)

for i in 0 1 2; do
    d=$dir/node$i
    mkdir -p "$d/meta" "$d/data"
    # sqlite (lmdb starts as fast); no fsync (Garage's default): the benchmark measures
    # layerstore, not the disk.
    cat >"$d/garage.toml" <<EOF
metadata_dir = "$d/meta"
data_dir = "$d/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$((base + 10 * i))"
rpc_public_addr = "127.0.0.1:$((base + 10 * i))"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$((base + 10 * i + 1))"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((base + 10 * i + 3))"
EOF
    NO_COLOR=1 "$garage" -c "$d/garage.toml" server >"$d/log" 2>&1 &
    echo $! >"$d/pid"
done
trap 'echo "garage cluster failed to start; logs in $dir/node*/log" >&2; stop' ERR

g() { "$garage" -c "$dir/node0/garage.toml" "$@" >/dev/null; }
# Each node's id (public key) once its RPC answers, then connect node 0 to the others.
for i in 0 1 2; do
    retry "$garage" -c "$dir/node$i/garage.toml" node id -q >"$dir/node$i/id" 2>/dev/null
    id=$(cat "$dir/node$i/id")
    ids[i]=${id%@*}
    # `node id` reads the key file, which exists before the node listens: retry the connect.
    [ "$i" = 0 ] || retry g node connect "$id" 2>/dev/null
done
# One zone, every node a role; replication_factor 3 puts a copy of everything on each.
g layout assign -z dc1 -c 1G "${ids[@]}"
g layout apply --version 1
# /health answers 200 once the node has quorum for every partition.
for i in 0 1 2; do retry curl -sf -o /dev/null "http://127.0.0.1:$((base + 10 * i + 3))/health"; done
key_id=GK$(hex 12)
key_secret=$(hex 32)
g bucket create "$bucket"
g key import --yes -n layerstore "$key_id" "$key_secret"
g bucket allow --read --write --owner "$bucket" --key "$key_id"
trap - ERR

cat <<EOF | tee "$dir/env"
export AWS_ACCESS_KEY_ID=$key_id AWS_SECRET_ACCESS_KEY=$key_secret AWS_REGION=garage AWS_ENDPOINT_URL=http://127.0.0.1:$((base + 1)) LAYERSTORE_BUCKET=$bucket
EOF
echo "garage cluster up in $((($(date +%s%N) - start_ns) / 1000000)) ms: nodes' S3 APIs on ports" \
    "$((base + 1)) $((base + 11)) $((base + 21)); logs in $dir/node*/log; '$0 stop $dir' to stop" >&2
