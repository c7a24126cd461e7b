#!/usr/bin/env bash
# Load test of `lookalike serve` with wrk (Debian: apt-get install wrk):
# requests/s and p50/p99 latency of POST /v1/check for hash-only and default
# mode, with 4 and 64 concurrent clients, against 127.0.0.1.
#
#   benches/serve.sh [INDEX] [IMAGE]
#
# INDEX defaults to a fresh index of examples/sample/training (embeddings
# included, so "default" mode embeds every query); IMAGE to an edited copy
# from examples/sample/generated. Environment: DURATION (wrk -d, default 60s),
# BIN (default target/release/lookalike), DEVICE (default cpu), THREADS (wrk -t, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60s}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-2}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/lookalike}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
[ -x "$BIN" ] || cargo build --release --quiet
tmp=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

INDEX=${1:-}
if [ -z "$INDEX" ]; then
    INDEX=$tmp/idx
    "$BIN" index examples/sample/training -i "$INDEX" --device "$DEVICE" -q >/dev/null
fi
IMAGE=${2:-examples/sample/generated/gen_00_reencoded.jpg}
[ -f "$IMAGE" ] || IMAGE=$(ls examples/sample/generated/*.jpg | head -1)

"$BIN" serve -i "$INDEX" --addr 127.0.0.1:0 --device "$DEVICE" 2>"$tmp/serve.log" &
server=$!
for _ in $(seq 100); do
    grep -q "listening on" "$tmp/serve.log" && break
    sleep 0.1
done
addr=$(grep -o 'http://[0-9.:]*' "$tmp/serve.log" | head -1)
[ -n "$addr" ] || { cat "$tmp/serve.log" >&2; exit 2; }
grep -m1 "listening on" "$tmp/serve.log"
echo "image: $IMAGE ($(stat -c %s "$IMAGE") bytes), $(nproc) cores, wrk -t$THREADS -d$DURATION"

cat >"$tmp/post.lua" <<'LUA'
local f = assert(io.open(os.getenv("IMAGE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d non2xx=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.connect + e.read + e.write + e.timeout, e.status))
end
LUA

printf "%-10s %8s %10s %9s %9s %8s\n" mode clients "req/s" "p50 ms" "p99 ms" errors
for mode in hash-only default; do
    q=""
    [ "$mode" = hash-only ] && q="?hash_only=true"
    for c in 4 64; do
        t=$(( c < THREADS ? c : THREADS ))
        line=$(IMAGE="$IMAGE" wrk -t"$t" -c"$c" -d"$DURATION" --timeout 30s -s "$tmp/post.lua" "$addr/v1/check$q" | grep '^RESULT')
        rps=$(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$line")
        p50=$(sed 's/.*p50_ms=\([^ ]*\).*/\1/' <<<"$line")
        p99=$(sed 's/.*p99_ms=\([^ ]*\).*/\1/' <<<"$line")
        err=$(sed 's/.*errors=\([0-9]*\) non2xx=\([0-9]*\).*/\1+\2/' <<<"$line")
        printf "%-10s %8s %10s %9s %9s %8s\n" "$mode" "$c" "$rps" "$p50" "$p99" "$err"
    done
done
# Engine calls against images checked: 1.0 on the CPU engine; with
# DEVICE=gpu, the mean batch the server formed from concurrent requests.
if command -v curl >/dev/null; then
    curl -s "$addr/metrics" | awk '/^lookalike_engine_batches_total/ {b=$2} /^lookalike_engine_batch_images_total/ {i=$2}
        END { if (b > 0) printf "engine calls %d, images %d, mean batch %.1f\n", b, i, i / b }'
fi
