#!/usr/bin/env bash
# Side by side in one run: `layerstore bench` against `layerstore serve` and against the
# distribution registry 2.8 (`docker-registry`), each on a fresh temporary filesystem root on
# this machine (or, with --storage s3, each under its own prefix of one bucket on a fresh
# 3-node Garage cluster started by benches/garage.sh), with --server-pid for the server's CPU
# and peak RSS. Appends a section with the machine, versions, commands, both results and the
# ratios to docs/benchmarks.md.
#
# Usage: benches/compare.sh [--storage s3] [extra `layerstore bench` options, e.g. --blob-size 256M]
# Environment: CARGO_TARGET_DIR (default: target), ROUNDS (default 1: runs per server,
# alternating; the table reports the median of each figure), NO_DOCS=1 to only print,
# COMPARE_DIR (default /tmp: where both storage roots go, e.g. /dev/shm for tmpfs), DD_MIB
# (default 1024: size of the storage ceiling measurement, match it to --blob-size), SETTLE
# (default 0: seconds to wait after the sync before each run; 61 on ext4 without a journal),
# ORDER (alternate, the default, or blocks: all of layerstore's rounds, then BLOCK_SETTLE
# seconds (default 361), then all of distribution's, so that on ext4 without a journal each
# server pays only for its own deletions, as it would alone on its disk), WARM_MIB (default 0:
# MiB of memory to touch and free before each run, see below).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
rounds=${ROUNDS:-1}
storage=filesystem
if [ "${1:-}" = --storage ]; then storage=$2; shift 2; fi
case $storage in filesystem | s3) ;; *) echo "--storage: filesystem or s3" >&2; exit 2 ;; esac
bench_args=("$@")

cargo build --release --quiet
ls_bin=$target/release/layerstore

work=$(mktemp -d "${COMPARE_DIR:-/tmp}/layerstore-compare.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$storage" = s3 ]; then benches/garage.sh stop "$work/garage" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$1/v2/" && return 0
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2; return 1
}

ls_port=$(free_port)
mkdir -p "$work/layerstore"
if [ "$storage" = s3 ]; then
    eval "$(GARAGE_PORT_BASE=${GARAGE_PORT_BASE:-39100} benches/garage.sh start "$work/garage")"
    ls_storage=(--storage "s3://$LAYERSTORE_BUCKET/layerstore")
    dist_storage="  s3:
    region: $AWS_REGION
    regionendpoint: $AWS_ENDPOINT_URL
    bucket: $LAYERSTORE_BUCKET
    accesskey: $AWS_ACCESS_KEY_ID
    secretkey: $AWS_SECRET_ACCESS_KEY
    secure: false
    v4auth: true
    rootdirectory: /distribution
  redirect:
    disable: true"
else
    ls_storage=(--root "$work/layerstore")
    dist_storage="  filesystem:
    rootdirectory: $work/distribution"
fi
"$ls_bin" serve --listen "127.0.0.1:$ls_port" "${ls_storage[@]}" --secret compare \
    >"$work/layerstore.log" 2>&1 &
ls_pid=$!; pids+=("$ls_pid")

dr_port=$(free_port)
mkdir -p "$work/distribution"
cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
storage:
$dist_storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$dr_port
YAML
# distribution's AWS SDK panics at start when AWS_CA_BUNDLE is set.
env -u AWS_CA_BUNDLE docker-registry serve "$work/registry.yml" >"$work/distribution.log" 2>&1 &
dr_pid=$!; pids+=("$dr_pid")

wait_port "$ls_port"; wait_port "$dr_port"

# The runs in order, as "round:server".
runs=()
case ${ORDER:-alternate} in
alternate) for round in $(seq "$rounds"); do runs+=("$round:layerstore" "$round:distribution"); done ;;
blocks) for server in layerstore distribution; do
        for round in $(seq "$rounds"); do runs+=("$round:$server"); done
    done ;;
*) echo "ORDER: alternate or blocks" >&2; exit 2 ;;
esac
previous=
for run in "${runs[@]}"; do
    round=${run%%:*} server=${run#*:}
    if [ $server = layerstore ]; then port=$ls_port pid=$ls_pid; else port=$dr_port pid=$dr_pid; fi
    # A server's first run in blocks order waits out the other's deletions (60 s, or
    # 360 s while an inode table block is dirty).
    if [ "${ORDER:-}" = blocks ] && [ -n "$previous" ] && [ "$previous" != "$server" ]; then
        sync; sleep "${BLOCK_SETTLE:-361}"
    fi
    previous=$server
    echo "round $round: $server" >&2
    # Start from no dirty pages: distribution never fsyncs, so the previous run's bytes
    # would otherwise be written back during this one (outside the timing).
    sync
    # On ext4 without a journal (this machine's disk) each new inode is found by scanning
    # past every inode deleted in the last 60 s (360 s while its table block is dirty), so
    # a run right after one that deleted thousands of files (small pushes, upload
    # sessions) pays for them: up to 3x the CPU per GiB. SETTLE=61 lets that window pass.
    sleep "${SETTLE:-0}"
    # On a VM that hands freed memory back to its host (virtio free page reporting), the first
    # touch of such a page costs a fault in the host: `dd` into tmpfs runs at 0.5 GB/s on them
    # and 3.5 GB/s on warm ones, and every page-cache or tmpfs page a push fills pays it.
    # WARM_MIB touches that much memory and frees it just before the run, so the run takes
    # warm pages (on a guest whose page_reporting min_free_ms outlasts the run).
    if [ "${WARM_MIB:-0}" -gt 0 ]; then
        dd if=/dev/zero of=/dev/shm/layerstore-compare-warm bs=1M count="$WARM_MIB" 2>/dev/null
        rm -f /dev/shm/layerstore-compare-warm
    fi
    # The server's open file descriptors, sampled every 0.2 s while the bench runs.
    (while sleep 0.2; do ls /proc/"$pid"/fd 2>/dev/null | wc -l; done) >"$work/$server-$round.fds" &
    sampler=$!
    # A failed verification still writes its JSON; keep going and report it.
    "$ls_bin" bench --url "http://127.0.0.1:$port" --server-pid "$pid" --json "${bench_args[@]}" \
        >"$work/$server-$round.json" || echo "$server round $round: FAILED verification" >&2
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
done

section=$(python3 - "$work" "$rounds" "${bench_args[*]:-}" "$storage" <<'PY'
import json, os, statistics, sys, platform, subprocess
work, rounds, args, storage = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if storage != "filesystem":
    args = f"--storage {storage} {args}".strip()

def load(server):
    runs = [json.load(open(f"{work}/{server}-{r}.json")) for r in range(1, rounds + 1)]
    out = {}
    for run in runs:
        for s in run["scenarios"]:
            out.setdefault(s["scenario"], []).append(s)
    return out

def med(entries, key):
    vals = []
    for e in entries:
        if e["status"] != "passed":
            return None
        v = e
        for k in key:
            v = v.get(k) if isinstance(v, dict) else None
        if v is None:
            return None
        vals.append(v)
    return statistics.median(vals)

ls, dr = load("layerstore"), load("distribution")
def fmt(v, d=1):
    return "-" if v is None else f"{v:.{d}f}"
def ratio(a, b, higher_better=True):
    if a is None or b is None or b == 0 or a == 0:
        return "-"
    return f"{(a / b) if higher_better else (b / a):.2f}x"

rows = []
for name in ls:
    a, b = ls[name], dr.get(name, [])
    fails = [f"{srv}: {e.get('error') or e.get('reason')}" for srv, es in (("layerstore", a), ("distribution", b)) for e in es if e["status"] != "passed"]
    if name in ("range-get", "small-push", "push-resume"):
        key, unit = ("operations_per_second",), "ops/s"
    else:
        key, unit = ("megabytes_per_second",), "MB/s"
    va, vb = med(a, key), med(b, key)
    pa, pb = med(a, ("latency", "p99_ms")), med(b, ("latency", "p99_ms"))
    ca, cb = med(a, ("server", "cpu_seconds_per_gib")), med(b, ("server", "cpu_seconds_per_gib"))
    ra, rb = med(a, ("server", "peak_rss_bytes")), med(b, ("server", "peak_rss_bytes"))
    mib = lambda v: None if v is None else v / 2**20
    rows.append(f"| {name} | {fmt(va)} {unit} | {fmt(vb)} {unit} | **{ratio(va, vb)}** | {fmt(pa,2)} / {fmt(pb,2)} | {fmt(ca,2)} / {fmt(cb,2)} | {fmt(mib(ra),0)} / {fmt(mib(rb),0)} |")
    for f in fails:
        rows.append(f"| {name} | FAILED: {f} | | | | | |")

def peak_fds(server):
    peaks = []
    for r in range(1, rounds + 1):
        counts = [int(line) for line in open(f"{work}/{server}-{r}.fds") if line.strip()]
        peaks.append(max(counts, default=0))
    return max(peaks)

def cmd(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"
cpu = cmd("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
print(f"""Machine: {cpu}, {cmd('nproc')} cores, {platform.system()} {platform.release()}, load average at start {cmd("cut -d' ' -f1-3 /proc/loadavg")}.
Versions: {cmd('rustc --version')}; layerstore {cmd('git describe --always --dirty')}; {cmd('docker-registry --version')}.
Command: `benches/compare.sh {args}` (ROUNDS={rounds}: each server ran {rounds} time(s), ORDER={os.environ.get("ORDER", "alternate")}; medians; SETTLE={os.environ.get("SETTLE", "0")}).

Server peak open file descriptors over the run: layerstore {peak_fds("layerstore")}, distribution {peak_fds("distribution")}.

| scenario | layerstore | distribution 2.8 | ratio (layerstore / distribution) | p99 ms (ls / dist) | server CPU s/GiB (ls / dist) | server peak RSS MiB (ls / dist) |
|---|---|---|---|---|---|---|
""" + "\n".join(rows))
PY
)

sha=$(openssl speed -seconds 2 -evp sha256 2>/dev/null | tail -1)
if [ "$storage" = s3 ]; then
    section="$section

Storage: one bucket on a 3-node Garage 2.5.0 cluster on loopback (replication factor 3,
benches/garage.sh), layerstore under prefix \`layerstore\`, distribution under \`distribution\`.

One-core SHA-256 limit (\`openssl speed -seconds 2 -evp sha256\`): \`$sha\`"
    echo "$section"
    if [ -z "${NO_DOCS:-}" ]; then
        printf '\n## layerstore vs distribution 2.8 on S3 (benches/compare.sh --storage s3, %s)\n\n%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$section" >>docs/benchmarks.md
    fi
    exit 0
fi
# The storage's own ceiling for durable writes, on the filesystem holding both roots: one
# fdatasync at the end (a monolithic push), and one per 16 MiB (a chunked push).
dd_mib=${DD_MIB:-1024}
dd_rate() { dd if=/dev/zero of="$work/dd" "$@" 2>&1 | tail -1 | sed 's/.*, //'; rm -f "$work/dd"; }
dd_once=$(dd_rate bs=1M count="$dd_mib" conv=fdatasync)
dd_chunks=$(dd_rate bs=16M count=$(( (dd_mib + 15) / 16 )) oflag=dsync)
section="$section

One-core SHA-256 limit (\`openssl speed -seconds 2 -evp sha256\`, bytes/s per block size 16 B … 16 KiB, in thousands):
\`$sha\`

Durable-write ceiling of the storage (\`dd\` of $dd_mib MiB beside the roots): one fdatasync at the end
$dd_once; fdatasync every 16 MiB (\`oflag=dsync\`) $dd_chunks."

echo "$section"
if [ -z "${NO_DOCS:-}" ]; then
    printf '\n## layerstore vs distribution 2.8 (benches/compare.sh, %s)\n\n%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$section" >>docs/benchmarks.md
fi
