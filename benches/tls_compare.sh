#!/usr/bin/env bash
# layerstore bench over http and https against the same release build, alternating rounds.
#
#   benches/tls_compare.sh [ROUNDS] [BLOB_SIZE]     (defaults: 3 rounds, 1G)
#
# Each round starts a fresh server on a fresh tmpfs root, once plain and once with TLS (an
# ECDSA P-256 certificate from a throwaway openssl CA; TLS 1.3 is negotiated), and runs the
# push, pull, range and small-push scenarios with --json. Results: $OUT (default
# /tmp/tls_compare), one JSON file per run; the medians are printed at the end.
set -euo pipefail
ROUNDS=${1:-3}
SIZE=${2:-1G}
BIN=${LAYERSTORE:-target/release/layerstore}
OUT=${OUT:-/tmp/tls_compare}
PORT=${PORT:-5472}
mkdir -p "$OUT"
cd "$OUT"
if [ ! -f cert.pem ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=bench-ca -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
        -keyout key.pem -out req.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
    openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile san.ext -out cert.pem 2>/dev/null
fi
cd - >/dev/null
run() { # MODE ROUND
    local mode=$1 round=$2 root=/dev/shm/tls_compare-$1 tls=() trust=()
    rm -rf "$root"
    if [ "$mode" = https ]; then
        tls=(--tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem")
        trust=(--cacert "$OUT/ca.pem")
    fi
    "$BIN" serve --listen 127.0.0.1:$PORT --root "$root" --secret b "${tls[@]}" 2>/dev/null &
    local pid=$!
    sleep 1
    "$BIN" bench --url "$mode://127.0.0.1:$PORT" "${trust[@]}" --server-pid $pid --blob-size "$SIZE" \
        --only push-monolithic,push-chunked,pull,range-get,small-push --json > "$OUT/$mode-$round.json"
    kill $pid; wait $pid 2>/dev/null || true
    rm -rf "$root"
}
for round in $(seq 1 "$ROUNDS"); do
    run http "$round"
    run https "$round"
done
python3 - "$OUT" <<'PY'
import json, statistics, sys, glob, os
out = sys.argv[1]
def load(mode):
    runs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, mode + "-*.json")))]
    figures = {}
    for run in runs:
        for s in run.get("scenarios", []):
            if s.get("status") != "passed":
                continue
            bulk = s["scenario"] in ("push-monolithic", "push-chunked", "pull")
            value = s["megabytes_per_second"] if bulk else s["operations_per_second"]
            figures.setdefault(s["scenario"], []).append(value)
    return {k: statistics.median(v) for k, v in figures.items()}
plain, tls = load("http"), load("https")
for name in plain:
    if name in tls:
        print(f"{name:18} http {plain[name]:10.1f}  https {tls[name]:10.1f}  ratio {tls[name] / plain[name]:.2f}")
PY
