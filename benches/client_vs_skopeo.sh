#!/usr/bin/env bash
# `layerstore push`/`pull` against `skopeo copy`, side by side on the same release
# `layerstore serve` (root on /dev/shm, so the disk is not what is measured): a LAYERS-layer
# image of random (incompressible) data, SIZE_MIB in all, in an OCI layout. Alternating,
# RUNS times each: skopeo push vs layerstore push (a fresh server root each time, so nothing
# is skipped), then skopeo pull vs layerstore pull (a fresh output layout each time). Wall
# time and the client's user+sys CPU (GNU time), medians and ratios, printed as markdown.
#
# Usage: benches/client_vs_skopeo.sh
# Environment: LAYERSTORE (default target/release/layerstore, built if missing), SKOPEO
# (skopeo), WORK (a fresh directory under /dev/shm), SIZE_MIB (1024), LAYERS (8), RUNS (3),
# PUSH_ARGS / PULL_ARGS (extra layerstore flags, e.g. "--jobs 8" or "--chunk-size 0"),
# KEEP=1 keeps WORK.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LAYERSTORE:-$(pwd)/target/release/layerstore}
skopeo=${SKOPEO:-skopeo}
size_mib=${SIZE_MIB:-1024}; layers=${LAYERS:-8}; runs=${RUNS:-3}
push_args=${PUSH_ARGS:-}; pull_args=${PULL_ARGS:-}
[ -x "$bin" ] || cargo build --release --quiet
work=${WORK:-$(mktemp -d /dev/shm/layerstore-vs-skopeo.XXXXXX)}
mkdir -p "$work"
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# The image: LAYERS uncompressed layers of random bytes, a config, a manifest, an index.json.
make_image() {
    local dir=$1 per=$((size_mib / layers)) i digest size layer_json=
    mkdir -p "$dir/blobs/sha256"
    echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
    for i in $(seq "$layers"); do
        head -c "$((per << 20))" /dev/urandom >"$dir/layer"
        digest=$(sha256sum "$dir/layer" | cut -d' ' -f1)
        mv "$dir/layer" "$dir/blobs/sha256/$digest"
        layer_json+="${layer_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$digest\",\"size\":$((per << 20))}"
    done
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$dir/config"
    digest=$(sha256sum "$dir/config" | cut -d' ' -f1); size=$(stat -c %s "$dir/config")
    mv "$dir/config" "$dir/blobs/sha256/$digest"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$digest" "$size" "$layer_json" >"$dir/manifest"
    digest=$(sha256sum "$dir/manifest" | cut -d' ' -f1); size=$(stat -c %s "$dir/manifest")
    mv "$dir/manifest" "$dir/blobs/sha256/$digest"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"t"}}]}' \
        "$digest" "$size" >"$dir/index.json"
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
# A fresh server over a fresh root.
restart_server() {
    if [ -n "$pid" ]; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work/root"
    "$bin" serve --listen "$host" --root "$work/root" --secret bench >"$work/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do curl -s -o /dev/null "http://$host/v2/" && return; sleep 0.05; done
    echo "serve did not start" >&2; cat "$work/serve.log" >&2; exit 1
}

# Runs a command under GNU time; appends "NAME WALL CPU" to the results.
measure() {
    local name=$1; shift
    /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >"$work/out.log" 2>&1 ||
        { echo "$name failed:" >&2; cat "$work/out.log" >&2; exit 1; }
    read -r wall user sys <"$work/time"
    echo "$name $wall $(python3 -c "print(round($user+$sys,2))")" >>"$work/results"
    echo "$name: ${wall}s wall, user ${user}s sys ${sys}s" >&2
}

echo "making the image (${size_mib} MiB, $layers layers) in $work/image" >&2
make_image "$work/image"
: >"$work/results"
# Pushes: a fresh root each time.
for run in $(seq "$runs"); do
    restart_server
    measure "push-skopeo" "$skopeo" --insecure-policy copy --dest-tls-verify=false \
        "oci:$work/image:t" "docker://$host/a/img:t"
    restart_server
    # shellcheck disable=SC2086
    measure "push-layerstore" "$bin" push --plain-http $push_args "$work/image:t" "$host/b/img:t"
done
# Pulls: both images stay on the last server; a fresh output layout each time.
"$skopeo" --insecure-policy copy --dest-tls-verify=false "oci:$work/image:t" "docker://$host/a/img:t" >/dev/null
for run in $(seq "$runs"); do
    rm -rf "$work/out-skopeo" "$work/out-layerstore"
    measure "pull-skopeo" "$skopeo" --insecure-policy copy --src-tls-verify=false \
        "docker://$host/a/img:t" "oci:$work/out-skopeo:t"
    # shellcheck disable=SC2086
    measure "pull-layerstore" "$bin" pull --plain-http $pull_args "$host/b/img:t" "$work/out-layerstore:t"
    cmp -s <(cd "$work/out-layerstore/blobs" && find . -type f | sort | xargs sha256sum) \
        <(cd "$work/image/blobs" && find . -type f | sort | xargs sha256sum) ||
        { echo "the pulled layout's blobs differ from the source" >&2; exit 1; }
done
rm -rf "$work/out-skopeo" "$work/out-layerstore"

python3 - "$work/results" "$size_mib" "$layers" "$(nproc)" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {}
for op in sorted({r[0] for r in rows}):
    walls = [float(r[1]) for r in rows if r[0] == op]
    cpus = [float(r[2]) for r in rows if r[0] == op]
    med[op] = (statistics.median(walls), statistics.median(cpus), walls)
print(f"{sys.argv[2]} MiB, {sys.argv[3]} layers, {sys.argv[4]} cores, server root on /dev/shm\n")
print("| operation | client | wall (median) | runs | client CPU user+sys (median) | MB/s |")
print("|---|---|---|---|---|---|")
for op in ("push", "pull"):
    for client in ("skopeo", "layerstore"):
        wall, cpu, walls = med[f"{op}-{client}"]
        mbs = int(sys.argv[2]) * 1.048576 / wall
        print(f"| {op} | {client} | {wall:.2f} s | {', '.join(f'{w:.2f}' for w in walls)} | {cpu:.2f} s | {mbs:.0f} |")
for op in ("push", "pull"):
    ratio = med[f"{op}-skopeo"][0] / med[f"{op}-layerstore"][0]
    print(f"\n{op}: layerstore is {ratio:.2f}x skopeo's speed (wall, medians)")
PY
