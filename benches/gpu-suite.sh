#!/usr/bin/env bash
# Every GPU figure the README claims, in one run, as one table:
#
#   benches/gpu-suite.sh                      # on a machine with a real GPU
#   GPU_SUITE_QUICK=1 benches/gpu-suite.sh    # smoke test (lavapipe, CI)
#
# Parts (each also times the CPU engine on the same input and checks the
# answers agree):
#   descriptors   benches/gpu.rs: 8 PDQ variants + quality + pHash of
#                 512x384 thumbnails, images/s (no decode)
#   hamming       benches/gpu.rs: top-10 over 1 M and 10 M random PDQ rows,
#                 comparisons/s (one 256-bit query variant against one row)
#   lite0, resnet50  benches/cnn.rs: EfficientNet-Lite0 at 224² and ResNet-50
#                 (SSCD's architecture, random weights) at 288², embeddings/s
#                 in f32 and f16 storage (f16 where the adapter has it)
#   index         `lookalike index DIR --device gpu` end to end (decode,
#                 hashes, keypoints, the embedding), images/s over the wall
#                 time; DIR is GPU_SUITE_DIR, else a folder of distinct-byte
#                 copies of examples/sample made under the target folder
# Budget: under 8 minutes of measuring on a real GPU (builds not counted).
#
# Env:
#   GPU_SUITE_QUICK=1   tiny sizes (4 images, 10 k / 100 k rows, CNN batch 1
#                       at 32x32, 3 images indexed) and the dev profile: about
#                       2 minutes on 2 cores under lavapipe; its figures mean
#                       nothing, it proves every part runs and agrees
#   GPU_SUITE_PROFILE   cargo profile to build with (default release; dev in
#                       quick mode, which reuses what `cargo test` built)
#   GPU_SUITE_DIR       folder of images for the index part
#   LOOKALIKE_REQUIRE_GPU=1  a missing adapter, or an index run that fell
#                       back to the CPU engine, fails the suite (else those
#                       parts are reported as skipped)
# Exit status: 0 when every part ran and agreed, 1 otherwise.
# Logs of each part: ${CARGO_TARGET_DIR:-target}/gpu-suite/*.log.
set -uo pipefail
cd "$(dirname "$0")/.."

quick="${GPU_SUITE_QUICK:-0}"
require="${LOOKALIKE_REQUIRE_GPU:-0}"
target="${CARGO_TARGET_DIR:-target}"
work="$target/gpu-suite"
mkdir -p "$work"
if [ "$quick" = 1 ]; then
  profile="${GPU_SUITE_PROFILE:-dev}"
  images=4 queries=4 dbs="10000 100000" cnn_batch=1 cnn_input=32 copies=1 index_n=3
else
  profile="${GPU_SUITE_PROFILE:-release}"
  images=256 queries=64 dbs="1000000 10000000" cnn_batch=32 cnn_input="" copies=40 index_n=0
fi
case "$profile" in dev | test) bindir="$target/debug" ;; *) bindir="$target/$profile" ;; esac

echo "building (profile $profile)"
if ! cargo build -q --profile "$profile" --bin lookalike ||
  ! cargo bench -q --profile "$profile" --bench gpu --bench cnn --no-run; then
  echo "build failed" >&2
  exit 1
fi

rows=()
failed=()
row() { rows+=("$(printf '%-28s %16s %16s   %s' "$@")"); }

# Runs a part, its output to $work/NAME.log; 0 ran, 1 failed, 2 no adapter.
run_part() {
  local name=$1
  shift
  local t0=$SECONDS
  "$@" >"$work/$name.log" 2>&1
  local rc=$?
  echo "  $name: exit $rc in $((SECONDS - t0)) s (log $work/$name.log)"
  if [ $rc -ne 0 ]; then
    if grep -q "no wgpu adapter" "$work/$name.log"; then
      [ "$require" = 1 ] && failed+=("$name (no adapter)")
      row "$name" skipped "" "no wgpu adapter"
      return 2
    fi
    failed+=("$name")
    tail -5 "$work/$name.log" >&2
    row "$name" FAILED "" "see $work/$name.log"
    return 1
  fi
  return 0
}

# --- descriptors and Hamming (benches/gpu.rs), one run per db size.
first=1
for db in $dbs; do
  echo "gpu.rs at $db rows"
  n_img=$images
  [ $first = 1 ] || n_img=2 # descriptors are measured once
  if run_part "gpu-$db" env BENCH_IMAGES="$n_img" BENCH_DB="$db" BENCH_QUERIES="$queries" \
    cargo bench -q --profile "$profile" --bench gpu; then
    log="$work/gpu-$db.log"
    if [ $first = 1 ]; then
      adapter=$(sed -n 's/^adapter: //p' "$log")
      same=$(awk '/identical:/ {print $2; exit}' "$log")
      row "descriptors 512x384" \
        "$(awk '/gpu engine:/ {print $3 " img/s"; exit}' "$log")" \
        "$(awk '/cpu engine:/ {print $3 " img/s"; exit}' "$log")" "identical $same"
      [ "${same%/*}" = "${same#*/}" ] || failed+=("descriptors (GPU and CPU differ)")
    fi
    same=$(awk '/identical:/ {v = $2} END {print v}' "$log")
    row "hamming top-10, $db rows" \
      "$(awk '/gpu kernel:/ {print $3 " cmp/s"}' "$log")" \
      "$(awk '/cpu scan:/ {print $3 " cmp/s"}' "$log")" "identical $same"
    [ "$same" = true ] || failed+=("hamming $db (GPU and CPU differ)")
  fi
  first=0
done

# --- CNN embeddings (benches/cnn.rs): every precision the adapter has.
for model in lite0 resnet50; do
  echo "cnn.rs $model"
  batch=$cnn_batch
  [ "$model" = resnet50 ] && [ "$quick" != 1 ] && batch=16
  if run_part "cnn-$model" env BENCH_CNN_MODEL="$model" BENCH_CNN_BATCH="$batch" \
    BENCH_CNN_INPUT="$cnn_input" cargo bench -q --profile "$profile" --bench cnn; then
    log="$work/cnn-$model.log"
    size=$(sed -n 's/^model: .*(\([0-9x]*\)).*/\1/p' "$log")
    cpu=$(awk '/cpu engine:/ {print $3 " img/s"}' "$log")
    # One row per "gpu precision:" block of the log.
    while IFS=$'\t' read -r p ips cos; do
      row "$model $size $p" "$ips img/s" "$cpu" "min cosine $cos"
    done < <(awk '/gpu precision:/ {p = $3 (/\(default\)/ ? "*" : "")}
      /gpu engine:/ {ips = $3}
      /agreement:/ {print p "\t" ips "\t" $7}' "$log")
  fi
done

# --- lookalike index end to end.
if [ -n "${GPU_SUITE_DIR:-}" ]; then
  dir=$GPU_SUITE_DIR
else
  # Distinct-byte copies (a tag after the JPEG's end) of the sample images,
  # so that every file is a new record; index_n > 0 keeps the first n.
  dir="$work/corpus-$copies-$index_n"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir.tmp"
    for c in $(seq "$copies"); do
      for f in examples/sample/training/*.jpg examples/sample/generated/*.jpg; do
        b=$(basename "$f" .jpg)
        { cat "$f"; printf 'copy %d' "$c"; } >"$dir.tmp/${b}_$c.jpg"
      done
    done
    if [ "$index_n" -gt 0 ]; then
      ls "$dir.tmp" | sort | tail -n +"$((index_n + 1))" | sed "s|^|$dir.tmp/|" | xargs rm -f
    fi
    mv "$dir.tmp" "$dir"
  fi
fi
n_files=$(find "$dir" -type f | wc -l)
echo "index of $dir ($n_files files)"
rm -rf "$work/index"
if [ -z "${adapter:-}" ] && [ "$require" != 1 ]; then
  row "index $n_files images" skipped "" "no wgpu adapter"
  n_files=0
fi
t0=$(date +%s.%N)
# LOOKALIKE_GPU_CNN=1: the embedding on the adapter even when it is a
# software one (lavapipe), so that the smoke run covers the GPU CNN too.
if [ "$n_files" -gt 0 ] && run_part index env LOOKALIKE_GPU_CNN=1 "$bindir/lookalike" index "$dir" \
  --index "$work/index" --device gpu; then
  t1=$(date +%s.%N)
  device=$(sed -n 's/^device: //p' "$work/index.log" | head -1)
  ips=$(awk -v n="$n_files" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f img/s", n / (b - a)}')
  row "index $n_files images" "$ips" "" "device: $device"
  case "$device" in
    "" | "CPU engine"*) [ "$require" = 1 ] && failed+=("index (GPU path did not run)") ;;
  esac
fi

# --- serve (benches/serve.sh) on the index just built: default-mode checks
# at 64 clients, the GPU engine (concurrent requests batched into one
# dispatch) against the CPU engine. Needs wrk; QUICK skips it.
if [ "$quick" != 1 ] && [ -n "${adapter:-}" ] && command -v wrk >/dev/null && [ -d "$work/index" ]; then
  echo "serve on $work/index"
  ok=1
  for dev in gpu cpu; do
    run_part "serve-$dev" env DEVICE=$dev DURATION=15s BIN="$bindir/lookalike" benches/serve.sh "$work/index" || ok=0
  done
  if [ $ok = 1 ]; then
    rps() { awk '$1 == "default" && $2 == 64 {print $3 " req/s"}' "$work/serve-$1.log"; }
    batch=$(sed -n 's/.*mean batch //p' "$work/serve-gpu.log")
    row "serve default, 64 clients" "$(rps gpu)" "$(rps cpu)" "mean GPU batch ${batch:-?}"
  fi
else
  row "serve" skipped "" "needs wrk, an adapter, the index part; QUICK skips it"
fi

echo
echo "adapter: ${adapter:-none}; cpu threads: $(nproc); profile $profile$([ "$quick" = 1 ] && echo ', QUICK (figures mean nothing)')"
printf '%-28s %16s %16s   %s\n' part "GPU engine" "CPU engine" check
printf '%s\n' "${rows[@]}"
echo "(* = the engine's default CNN precision)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
