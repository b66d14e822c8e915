#!/usr/bin/env bash
# How close does a layerstore pull come to the client's ceiling? `curl -o /dev/null` pulls the
# same blob from `layerstore serve` and from nginx serving the blob's data file with sendfile
# (the kernel copies nothing into user space on that side, so curl's own receive path is the
# limit), alternating, ROUNDS times; prints medians as a markdown table.
#
# Usage: benches/pull_ceiling.sh   Environment: SIZE (default 1G), ROUNDS (5), CARGO_TARGET_DIR.
# Needs nginx (Debian package nginx) on PATH or in /usr/sbin.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$(pwd)/target}
size=${SIZE:-1G}; rounds=${ROUNDS:-5}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet
bin=$target/release/layerstore
work=$(mktemp -d /tmp/layerstore-pullceiling.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ls_port=$(free_port); ng_port=$(free_port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

bytes=$(python3 -c "s='$size'; m={'K':1<<10,'M':1<<20,'G':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))")
head -c "$bytes" /dev/urandom >"$work/blob"
digest=$("$bin" put --root "$work/root" --repo pull/ceiling "$work/blob")
rm "$work/blob"
hex=${digest#sha256:}
data_dir=$work/root/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex

"$bin" serve --listen "127.0.0.1:$ls_port" --root "$work/root" --secret ceiling >"$work/serve.log" 2>&1 &
pids+=($!)
cat >"$work/nginx.conf" <<CONF
daemon off;
user root;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $work/nginx-body;
    proxy_temp_path $work/nginx-proxy;
    fastcgi_temp_path $work/nginx-fastcgi;
    uwsgi_temp_path $work/nginx-uwsgi;
    scgi_temp_path $work/nginx-scgi;
    server { listen 127.0.0.1:$ng_port; root $data_dir; }
}
CONF
"$nginx" -c "$work/nginx.conf" -p "$work" &
pids+=($!)
for port in "$ls_port" "$ng_port"; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
ls_url=http://127.0.0.1:$ls_port/v2/pull/ceiling/blobs/$digest
ng_url=http://127.0.0.1:$ng_port/data
# Warm the page cache and check both serve the same number of bytes.
for url in "$ls_url" "$ng_url"; do
    got=$(curl -s -o /dev/null -w '%{size_download}' "$url" || true)
    [ "$got" = "$bytes" ] || { echo "$url served $got bytes, expected $bytes" >&2; exit 1; }
done

: >"$work/results"
for round in $(seq "$rounds"); do
    for server in layerstore nginx; do
        url=$ls_url; [ $server = nginx ] && url=$ng_url
        speed=$(curl -sf -o /dev/null -w '%{speed_download}' "$url")
        echo "$server $speed" >>"$work/results"
    done
done
python3 - "$work/results" "$size" "$rounds" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    server, speed = line.split()
    runs.setdefault(server, []).append(float(speed) / 1e6)
ls, ng = statistics.median(runs["layerstore"]), statistics.median(runs["nginx"])
print(f"SIZE={sys.argv[2]} ROUNDS={sys.argv[3]}: curl -o /dev/null, MB/s\n")
print("| server | median | all runs |\n|---|---|---|")
for name, vals in (("layerstore serve (mapped 2 MiB windows, writev)", runs["layerstore"]), ("nginx (sendfile)", runs["nginx"])):
    print(f"| {name} | {statistics.median(vals):.1f} | {', '.join(f'{v:.0f}' for v in vals)} |")
print(f"\nlayerstore / nginx: {ls / ng:.2f}")
PY
