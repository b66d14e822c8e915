#!/usr/bin/env bash
# Issue 21's figure: the cost of the embedding path. Small pushes and 4 KiB range GETs through
# the axum example (layerstore mounted under /v2 of an axum Router, examples/axum.rs) against
# `layerstore serve`, same machine, same run, each on its own fresh directory of the same disk;
# the order alternates between rounds; medians of the rounds.
#
# Usage: benches/embedding_overhead.sh [ROUNDS] [SECONDS]   (defaults 3 and 10)
# Needs: cargo build --release --bin layerstore --example axum (done here).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}
work=${BENCH_DIR:-$(mktemp -d /var/tmp/embedding-bench.XXXXXX)}
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release --quiet --bin layerstore --example axum
bin=target/release/layerstore
app=target/release/examples/axum

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() {
    for _ in $(seq 100); do
        curl -fs "http://$1/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server at $1 did not start" >&2; exit 1
}

# run_one NAME ROUND: start the server NAME on a fresh directory, bench it, stop it.
run_one() {
    local name=$1 round=$2 port dir pid
    port=$(free_port)
    dir="$work/$name-$round"
    mkdir -p "$dir"
    case $name in
        # No access log: the axum example installs no log subscriber, so neither logs a line.
        serve) RUST_LOG=warn "$bin" serve --storage "$dir" --listen "127.0.0.1:$port" 2>/dev/null & ;;
        # The bench writes under `bench-<seed>/`: that is the app's writable prefix here.
        axum) WRITABLE_PREFIX=bench- "$app" "$dir" "127.0.0.1:$port" >/dev/null 2>&1 & ;;
    esac
    pid=$!
    wait_up "127.0.0.1:$port"
    "$bin" bench --url "http://127.0.0.1:$port" --only range-get,small-push --blob-size 64M \
        --range-seconds "$seconds" --small-seconds "$seconds" --server-pid "$pid" --json \
        >"$work/$name-$round.json"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

for round in $(seq "$rounds"); do
    if (( round % 2 )); then order="serve axum"; else order="axum serve"; fi
    for name in $order; do
        echo "round $round: $name (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        run_one "$name" "$round"
    done
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def figures(name, round):
    report = json.load(open(f"{work}/{name}-{round}.json"))
    out = {}
    for s in report["scenarios"]:
        if s["status"] != "passed":
            sys.exit(f"{name} round {round}: {s['scenario']} {s['status']}: {s}")
        out[s["scenario"]] = (s["operations_per_second"], s["latency"]["p99_ms"])
    return out
rows = {name: [figures(name, r) for r in range(1, rounds + 1)] for name in ("serve", "axum")}
print("| scenario | layerstore serve, ops/s (p99 ms) | axum app, ops/s (p99 ms) | axum / serve, median of rounds |")
print("|---|---|---|---|")
for scenario in ("small-push", "range-get"):
    per = {name: [r[scenario] for r in rows[name]] for name in rows}
    ratios = [a[0] / s[0] for a, s in zip(per["axum"], per["serve"])]
    fmt = lambda xs: ", ".join(f"{x[0]:,.0f} ({x[1]:.1f})" for x in xs)
    print(f"| {scenario} | {fmt(per['serve'])} | {fmt(per['axum'])} | **{statistics.median(ratios):.3f}** ({', '.join(f'{r:.3f}' for r in ratios)}) |")
PY
