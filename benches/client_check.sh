#!/usr/bin/env bash
# Is `layerstore bench` the bottleneck? Runs it and the reference clients (curl for the big
# push and pull, wrk for range GETs) against the same `layerstore serve`, alternating, ROUNDS
# times, and prints the medians as a markdown table. curl and wrk verify nothing; the bench
# verifies everything (SHA-256 of the pull, bytes of every range), so equal figures mean the
# verification is free where it overlaps with waiting on the server.
#
# Usage: benches/client_check.sh   Environment: SIZE (default 256M), SECONDS_RANGE (5),
# CONNECTIONS (32), ROUNDS (3), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$(pwd)/target}
size=${SIZE:-256M}; secs=${SECONDS_RANGE:-5}; conns=${CONNECTIONS:-32}; rounds=${ROUNDS:-3}
cargo build --release --quiet
bin=$target/release/layerstore
work=$(mktemp -d /tmp/layerstore-clientcheck.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --root "$work/root" --secret check >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
base=http://127.0.0.1:$port
for _ in $(seq 100); do curl -s -o /dev/null "$base/v2/" && break; sleep 0.1; done
bytes=$(python3 -c "import sys; s='$size'; m={'K':1<<10,'M':1<<20,'G':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))")

bench_json() { "$bin" bench --url "$base" --blob-size "$size" --connections "$conns" --range-seconds "$secs" --json "$@"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); s=d['scenarios'][0]; assert s['status']=='passed', s; print(s['$1'])"; }

: >"$work/results"
for round in $(seq "$rounds"); do
    echo "round $round" >&2
    head -c "$bytes" /dev/urandom >"$work/blob"
    digest=sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)
    repo=curl$round/blob
    # Monolithic push: POST, then PUT ?digest= with the file as the body.
    location=$(curl -sf -X POST -D - -o /dev/null "$base/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    case $location in http*) ;; *) location=$base$location ;; esac
    sep='?'; case $location in *\?*) sep='&' ;; esac
    t=$(curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$work/blob" \
        -o /dev/null -w '%{time_total}' "$location${sep}digest=$digest")
    echo "push curl $(python3 -c "print($bytes/1e6/$t)")" >>"$work/results"
    echo "push bench $(bench_json --only push-monolithic | field megabytes_per_second)" >>"$work/results"
    # Pull: curl to /dev/null (no verification), curl | openssl dgst (verified), the bench (verified).
    echo "pull curl $(curl -sf -o /dev/null -w '%{speed_download}' "$base/v2/$repo/blobs/$digest" | python3 -c 'import sys; print(float(sys.stdin.read())/1e6)')" >>"$work/results"
    start=$(date +%s.%N)
    got=$(curl -sf "$base/v2/$repo/blobs/$digest" | openssl dgst -sha256 | sed 's/.*= //')
    end=$(date +%s.%N)
    [ "sha256:$got" = "$digest" ] || { echo "curl|openssl: wrong digest" >&2; exit 1; }
    echo "pull curl+openssl $(python3 -c "print($bytes/1e6/($end-$start))")" >>"$work/results"
    echo "pull bench $(bench_json --only pull | field megabytes_per_second)" >>"$work/results"
    # Range GETs: wrk with random 4 KiB ranges of the same blob vs the bench.
    cat >"$work/range.lua" <<LUA
math.randomseed(os.time())
request = function()
  local o = math.random(0, $bytes - 4096)
  return wrk.format("GET", "/v2/$repo/blobs/$digest", {["Range"] = "bytes=" .. o .. "-" .. (o + 4095)})
end
LUA
    rps=$(wrk -t2 -c"$conns" -d"${secs}s" -s "$work/range.lua" "$base" | sed -n 's/^Requests\/sec: *//p')
    echo "range wrk $rps" >>"$work/results"
    echo "range bench $(bench_json --only range-get | field operations_per_second)" >>"$work/results"
done

python3 - "$work/results" "$size" "$rounds" "$conns" "$secs" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    scenario, client, value = line.rsplit(None, 2)[0], line.split()[1], float(line.split()[-1])
    rows.setdefault((line.split()[0], client), []).append(value)
size, rounds, conns, secs = sys.argv[2:]
print(f"SIZE={size} ROUNDS={rounds} CONNECTIONS={conns} SECONDS_RANGE={secs}\n")
print("| test | client | median | all runs |\n|---|---|---|---|")
for (test, client), vals in rows.items():
    unit = "req/s" if test == "range" else "MB/s"
    print(f"| {test} | {client} | {statistics.median(vals):.1f} {unit} | {', '.join(f'{v:.0f}' for v in vals)} |")
PY
