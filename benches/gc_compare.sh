#!/usr/bin/env bash
# Garbage collection on a big store: `layerstore gc` against distribution 2.8's
# `docker-registry garbage-collect`, then push throughput while a collection runs (issue 16).
#
# 1. benches/gc_store.py writes one store of BLOBS blobs and MANIFESTS manifests (about 20%
#    garbage, everything a day old) and what each collector should delete.
# 2. For each of RUNS runs, each mode (default, --delete-untagged) and each collector (the order
#    alternates between runs): a copy of the store made equal to it again and synced, outside the
#    timing (so both collectors find it in the page cache, clean), then the timed collection on
#    the copy: `layerstore gc --offline --grace 0s [--delete-untagged] --json` and
#    `docker-registry garbage-collect [--delete-untagged] CONFIG`, real deletes. The blobs and
#    manifests each deleted are checked against the generator's expectation for that collector.
# 3. The floor (when RUNS > 0): the files layerstore's default-mode run deleted (its links and
#    blobs' data), deleted again from a fresh copy by a minimal program (unlink each, rmdir its
#    directory, FLOOR_THREADS threads pulling from one list), RUNS times each; and layerstore's
#    --dry-run, RUNS times. The ceiling ratio on this disk is distribution's time / (the fastest
#    floor + layerstore's dry run): what a collector that reads like layerstore and deletes as
#    fast as the disk allows would reach.
# 4. Unless PUSH_ROUNDS=0: the copy, collected once (so later collections find no old garbage:
#    each is the full mark and the full enumeration of the blob store, deleting nothing; the
#    pushed blobs are young), served by `layerstore serve`. Per window: `layerstore bench --only
#    small-push` for PUSH_SECONDS, then MONO_PUSHES monolithic pushes of a MONO_SIZE blob
#    (MONO_PUSHES=0 skips them), without or with collections beside them (GC_MODE), alternating,
#    PUSH_ROUNDS rounds; the pushed blobs are collected after each window, so each starts from
#    the same store.
# Prints the machine, the commands, medians and ratios as markdown.
#
# Usage: benches/gc_compare.sh [BLOBS] [MANIFESTS] [RUNS]   (default 100000 10000 3; RUNS=0
# skips the collections' timing)
# Environment: GC_BENCH_DIR (default /tmp: where the store and its copy go, about 2 GB each at
# the default size, plus up to 2 GB of pushes), GC_STORE (reuse a store gc_store.py wrote),
# FLOOR_THREADS ("1 4 16 64"), PUSH_ROUNDS (3), PUSH_SECONDS (20), MONO_PUSHES (5), MONO_SIZE (64M), GC_MODE (cli: the
# collections beside the pushes are `layerstore gc` back to back, 4 threads; serve: the server's
# own, `serve --gc-interval 1s --gc-grace 2h`, one thread, restarted per window), GC_PREFIX (with
# GC_MODE=cli, a command the collections run under, e.g. "nice -n 19"), KEEP=1 (keep the work
# directory), LAYERSTORE_BIN (use this binary; no build), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
blobs=${1:-100000}; manifests=${2:-10000}; runs=${3:-3}
push_rounds=${PUSH_ROUNDS:-3}; push_seconds=${PUSH_SECONDS:-20}
mono_pushes=${MONO_PUSHES:-5}; mono_size=${MONO_SIZE:-64M}; gc_mode=${GC_MODE:-cli}
case $gc_mode in cli | serve) ;; *) echo "GC_MODE: cli or serve" >&2; exit 2 ;; esac
target=${CARGO_TARGET_DIR:-$(pwd)/target}

# LAYERSTORE_BIN: a binary built already (a shared machine's target directory may be rebuilding
# from other work in progress).
[ -n "${LAYERSTORE_BIN:-}" ] || cargo build --release --quiet
work=$(mktemp -d "${GC_BENCH_DIR:-/tmp}/layerstore-gcbench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
# A copy, so that builds beside the benchmark do not swap the binary under it.
bin=$work/layerstore
cp "${LAYERSTORE_BIN:-$target/release/layerstore}" "$bin"

store=${GC_STORE:-$work/store}
if [ -z "${GC_STORE:-}" ]; then
    mkdir "$store"
    echo "generating $blobs blobs, $manifests manifests in $store" >&2
    python3 benches/gc_store.py "$store" --blobs "$blobs" --manifests "$manifests" >&2
fi
copy=$work/copy
files=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["files"])' "$store/gc_store.json")

# Makes $copy the same as the store again: what a collection deleted comes back (`cp -n` copies
# only the missing files, with their old times), the collector's own files go, and the count of
# files is checked. Much faster than a new copy where deleting costs a discard per block (an
# ext4 mounted with `discard`, as here). Synced, so no write-back runs during the timing.
fresh_copy() {
    if [ -d "$copy" ]; then
        cp -a -n "$store/." "$copy/"
        rm -rf "$copy/layerstore"
    else
        cp -a "$store" "$copy"
    fi
    local have
    have=$(find "$copy/docker" -type f | wc -l)
    if [ "$have" != "$files" ]; then echo "copy has $have files, the store $files" >&2; exit 1; fi
    sync
}

cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $copy
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
YAML

# Runs one collector on a fresh copy; its output goes to $work/TOOL-MODE-RUN.out, and
# /usr/bin/time's "wall user sys maxrss_kb" to .time.
collect() {
    local tool=$1 mode=$2 run=$3 flags=()
    [ "$mode" = untagged ] && flags=(--delete-untagged)
    fresh_copy
    echo "run $run, $mode: $tool (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    local out=$work/$tool-$mode-$run
    if [ "$tool" = layerstore ]; then
        /usr/bin/time -f '%e %U %S %M' -o "$out.time" \
            "$bin" gc --root "$copy" --offline --grace 0s "${flags[@]}" --json >"$out.out"
    else
        /usr/bin/time -f '%e %U %S %M' -o "$out.time" \
            docker-registry garbage-collect "${flags[@]}" "$work/registry.yml" >"$out.out" 2>&1
    fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$runs"); do
    for mode in default untagged; do
        if [ $((run % 2)) = 1 ]; then order="layerstore distribution"; else order="distribution layerstore"; fi
        for tool in $order; do collect "$tool" "$mode" "$run"; done
    done
done

# The floor: a minimal program deleting a list of files (and each one's directory), N threads.
cat >"$work/floor.rs" <<'RUST'
use std::sync::atomic::{AtomicUsize, Ordering};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args[1].parse().unwrap();
    let list = std::fs::read_to_string(&args[2]).unwrap();
    let paths: Vec<&str> = list.lines().collect();
    let next = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(path) = paths.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if std::fs::remove_file(path).is_ok() {
                        let _ = std::fs::remove_dir(std::path::Path::new(path).parent().unwrap());
                    }
                }
            });
        }
    });
    println!("{:.3}", started.elapsed().as_secs_f64());
}
RUST
if [ "$runs" -gt 0 ]; then
    rustc -O -o "$work/floor" "$work/floor.rs"
    python3 - "$work/layerstore-default-1.out" "$copy" >"$work/floor-list" <<'PY'
import json, sys
report, root = json.load(open(sys.argv[1])), sys.argv[2]
for link in report["links"]:
    print(root + link)
for blob in report["blobs"]:
    alg, hex = blob["digest"].split(":")
    print(f"{root}/docker/registry/v2/blobs/{alg}/{hex[:2]}/{hex}/data")
PY
    for run in $(seq "$runs"); do
        for threads in ${FLOOR_THREADS:-1 4 16 64}; do
            fresh_copy
            echo "run $run: floor, $threads threads (load $(cut -d' ' -f1 /proc/loadavg))" >&2
            "$work/floor" "$threads" "$work/floor-list" >>"$work/floor-$threads"
        done
        echo "run $run: layerstore --dry-run (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        /usr/bin/time -f '%e %U %S %M' -a -o "$work/dry-run.time" \
            "$bin" gc --root "$copy" --offline --grace 0s --dry-run --json >/dev/null
    done
fi
load_collect=$(cut -d' ' -f1-3 /proc/loadavg)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts `layerstore serve` on the copy with extra flags; its log goes to $work/serve.log.
start_server() {
    port=$(free_port)
    "$bin" serve --listen "127.0.0.1:$port" --root "$copy" --secret gcbench "$@" >"$work/serve.log" 2>&1 &
    serve_pid=$!; pids+=("$serve_pid")
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && return 0; sleep 0.1; done
    echo "layerstore serve did not start" >&2; exit 1
}

stop_server() {
    kill "$serve_pid"
    wait "$serve_pid" || true
}

# Pushes for one window, with or without collections beside them: `layerstore gc` back to back
# (GC_MODE=cli), or the server's own collector (GC_MODE=serve: --gc-interval 1s).
push_window() {
    local gc=$1 round=$2 loop=
    if [ "$gc_mode" = serve ]; then
        stop_server
        if [ "$gc" = on ]; then start_server --gc-interval 1s --gc-grace 2h; else start_server; fi
    elif [ "$gc" = on ]; then
        rm -f "$work/stop"
        (while [ ! -e "$work/stop" ]; do
            /usr/bin/time -f '%e' -a -o "$work/gc-durations-$round" \
                ${GC_PREFIX:-} "$bin" gc --root "$copy" --grace 2h --json >"$work/gc-last.json"
        done) &
        loop=$!
    fi
    if [ "$gc" = on ]; then sleep 2; fi
    local started
    started=$(date +%s.%N)
    "$bin" bench --url "http://127.0.0.1:$port" --only small-push --small-seconds "$push_seconds" \
        --server-pid "$serve_pid" --json >"$work/push-small-$gc-$round.json"
    for n in $(seq "$mono_pushes"); do
        "$bin" bench --url "http://127.0.0.1:$port" --only push-monolithic --blob-size "$mono_size" \
            --json >"$work/push-mono-$gc-$round-$n.json"
    done
    echo "$gc $started $(date +%s.%N)" >>"$work/windows"
    if [ -n "$loop" ]; then
        touch "$work/stop"
        wait "$loop"
    fi
    if [ "$gc_mode" = serve ]; then
        stop_server
        grep 'garbage collection finished' "$work/serve.log" >>"$work/gc-serve-log-$round" || true
        start_server
    fi
    # The pushed blobs are referenced by nothing: collect them (nothing writes now), so every
    # window starts from the same store and the disk does not fill up.
    "$bin" gc --root "$copy" --offline --grace 0s --json >/dev/null
}

if [ "$push_rounds" -gt 0 ]; then
    fresh_copy
    "$bin" gc --root "$copy" --offline --grace 0s --json >/dev/null
    start_server
    for round in $(seq "$push_rounds"); do
        if [ $((round % 2)) = 1 ]; then order="off on"; else order="on off"; fi
        for gc in $order; do
            echo "push round $round, gc $gc (load $(cut -d' ' -f1 /proc/loadavg))" >&2
            push_window "$gc" "$round"
        done
    done
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo "## Garbage collection: layerstore gc vs distribution 2.8 garbage-collect ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "\`benches/gc_compare.sh $blobs $manifests $runs\` (PUSH_ROUNDS=$push_rounds PUSH_SECONDS=$push_seconds MONO_PUSHES=$mono_pushes MONO_SIZE=$mono_size GC_MODE=$gc_mode${GC_PREFIX:+ GC_PREFIX=\"$GC_PREFIX\"}),"
echo "layerstore $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (with uncommitted changes in src/)'), $(docker-registry --version | cut -d' ' -f3)."
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB,"
echo "Linux $(uname -r); store on $(df -T "$work" | awk 'NR==2 {print $2 " (" $1 ")"}'); load average at the start $load_start,"
echo "after the collections $load_collect, at the end $load_end."
echo
python3 - "$work" "$store/gc_store.json" "$runs" "$push_rounds" "$mono_pushes" <<'PY'
import glob, json, re, statistics, sys
work, expected_path, runs, push_rounds, mono_pushes = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
expected = json.load(open(expected_path))
med = statistics.median
failures = []

def deleted(tool, mode, run):
    out = open(f"{work}/{tool}-{mode}-{run}.out").read()
    if tool == "layerstore":
        report = json.loads(out)
        return len(report["blobs"]), len(report["manifests"])
    m = re.search(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion", out)
    return int(m.group(2)), int(m.group(3))

def wanted(tool, mode):
    e = expected["default"] if mode == "default" else expected["untagged"][tool]
    return e["blobs_deleted"], e["manifests_deleted"]

print(f"Store: {expected['blobs']:,} blobs, {expected['manifests']:,} manifests "
      f"({expected['deleted_manifests']:,} deleted), {expected['repositories']} repositories, "
      f"{expected['tags']:,} tags, {expected['files']:,} files, written in {expected['seconds']} s.\n")
if runs:
    print("| mode | collector | wall s, median (runs) | CPU user+sys s | peak RSS MiB | blobs / manifests deleted | distribution / layerstore |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("default", "untagged"):
        walls = {}
        for tool in ("distribution", "layerstore"):
            times = [list(map(float, open(f"{work}/{tool}-{mode}-{r}.time").read().split()[-4:]))
                     for r in range(1, runs + 1)]
            walls[tool] = med(t[0] for t in times)
            counts = {deleted(tool, mode, r) for r in range(1, runs + 1)}
            if counts != {wanted(tool, mode)}:
                failures.append(f"{tool} {mode}: deleted {counts}, expected {wanted(tool, mode)}")
            ratio = f"**{walls['distribution'] / walls['layerstore']:.1f}x**" if tool == "layerstore" else ""
            runs_text = ", ".join(f"{t[0]:.2f}" for t in times)
            print(f"| {mode} | {tool} | {walls[tool]:.2f} ({runs_text}) | {med(t[1] + t[2] for t in times):.2f} "
                  f"| {med(t[3] for t in times) / 1024:.0f} | {'/'.join(map(str, sorted(counts)[0]))} | {ratio} |")
        if mode == "default":
            default_walls = dict(walls)
    floors = {int(f.rsplit("-", 1)[1]): [float(x) for x in open(f).read().split()]
              for f in glob.glob(f"{work}/floor-*") if f.rsplit("-", 1)[1].isdigit()}
    dry = [float(l.split()[0]) for l in open(f"{work}/dry-run.time") if l.strip()]
    files = sum(1 for _ in open(f"{work}/floor-list"))
    print(f"\nThe floor: the {files:,} files layerstore deleted by default (and their directories), "
          f"deleted again from a fresh copy by a minimal program (unlink, rmdir; N threads):\n")
    print("| threads | wall s, median (runs) |")
    print("|---|---|")
    for threads in sorted(floors):
        print(f"| {threads} | {med(floors[threads]):.2f} ({', '.join(f'{x:.2f}' for x in floors[threads])}) |")
    best = min(med(v) for v in floors.values())
    ceiling = default_walls["distribution"] / (best + med(dry))
    reached = default_walls["distribution"] / default_walls["layerstore"]
    print(f"\nlayerstore --dry-run: {med(dry):.2f} s ({', '.join(f'{x:.2f}' for x in dry)}). Ceiling on this "
          f"disk: distribution / (fastest floor + dry run) = {default_walls['distribution']:.2f} / "
          f"({best:.2f} + {med(dry):.2f}) = **{ceiling:.1f}x**; layerstore reaches {reached:.1f}x "
          f"({reached / ceiling:.0%} of the ceiling).")

if push_rounds:
    def small(gc):
        return [json.load(open(f"{work}/push-small-{gc}-{r}.json"))["scenarios"][0] for r in range(1, push_rounds + 1)]
    def ops(s):
        return s["operations_per_second"] if s["status"] == "passed" else float("nan")
    def p99(s):
        return (s.get("latency") or {}).get("p99_ms", float("nan"))
    print("\n| pushes | without GC, median (rounds) | with GC running, median (rounds) | with / without |")
    print("|---|---|---|---|")
    off, on = small("off"), small("on")
    o, n = [ops(s) for s in off], [ops(s) for s in on]
    fmt = lambda xs: ", ".join(f"{x:.0f}" for x in xs)
    print(f"| small-push (64 KiB, 8 workers), ops/s | {med(o):.0f} ({fmt(o)}) | {med(n):.0f} ({fmt(n)}) | **{med(n) / med(o):.2f}** |")
    print(f"| small-push p99 ms | {med(p99(s) for s in off):.1f} | {med(p99(s) for s in on):.1f} | |")
    if mono_pushes:
        def mono(gc):
            return [json.load(open(f))["scenarios"][0]["megabytes_per_second"]
                    for f in sorted(glob.glob(f"{work}/push-mono-{gc}-*.json"))]
        o, n = mono("off"), mono("on")
        print(f"| push-monolithic, MB/s ({len(o)} pushes each) | {med(o):.0f} | {med(n):.0f} | **{med(n) / med(o):.2f}** |")
    durations = [float(x) for f in glob.glob(f"{work}/gc-durations-*") for x in open(f).read().split()]
    durations += [float(x) for f in glob.glob(f"{work}/gc-serve-log-*")
                  for x in re.findall(r"; (\d+\.\d+) s", open(f).read())]
    line = f"\nCollections beside the pushes: {len(durations)}, median {med(durations or [0]):.2f} s each"
    if glob.glob(f"{work}/gc-last.json"):
        last = json.load(open(f"{work}/gc-last.json"))
        line += (f" (the last: {last['repositories']} repositories, {last['blobs_marked']:,} blobs "
                 f"marked, {last['kept_young']:,} young blobs kept, {len(last['blobs'])} deleted)")
    on_seconds = sum(float(b) - float(a) for g, a, b in
                     (l.split() for l in open(f"{work}/windows")) if g == "on")
    print(line + f"; collecting {min(1, sum(durations) / on_seconds):.0%} of the time the pushes "
          f"with GC ran ({on_seconds:.0f} s).")
for f in failures:
    print(f"\nMISMATCH: {f}")
sys.exit(1 if failures else 0)
PY
