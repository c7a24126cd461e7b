#!/usr/bin/env bash
# Proof that a refactor changed no result: run before and after, then
#   diff -r BEFORE AFTER
# Writes to OUT (default /tmp/lookalike-identity): for each mode (default,
# --hash-only, --no-verify, --model with the test fixture), the index content
# digest and `check --csv` / `--json` of the queries, plus the pHash and
# keypoint identity dumps. Timings and absolute index paths are stripped.
# Usage: scripts/identity.sh [CORPUS_DIR] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-../shared/corpus}
out=${2:-/tmp/lookalike-identity}
mkdir -p "$out"
cargo build --release --quiet --examples
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/lookalike
ex=${CARGO_TARGET_DIR:-target}/release/examples
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

strip_json() { grep -v -E '"(seconds|images_per_second|index)":' ; }

run_mode() { # name, index args, check args
  local name=$1 iargs=$2 cargs=$3
  local idx="$work/idx-$name"
  # shellcheck disable=SC2086
  "$bin" index "$corpus/db" -i "$idx" -q $iargs >/dev/null
  "$bin" info -i "$idx" --json | grep -E '"content_digest"|"live_images"' > "$out/$name.info"
  # shellcheck disable=SC2086
  "$bin" check "$corpus/queries" -i "$idx" --csv $cargs > "$out/$name.csv" || true
  # shellcheck disable=SC2086
  "$bin" check "$corpus/queries" -i "$idx" --json $cargs | strip_json > "$out/$name.json" || true
  echo "$name: $(cat "$out/$name.info" | tr -d ' \n')"
}

run_mode default "" ""
run_mode hash-only "--hash-only" ""
cp "$out/hash-only.info" "$out/no-verify.info"
"$bin" check "$corpus/queries" -i "$work/idx-hash-only" --csv --no-verify > "$out/no-verify.csv" || true
"$bin" check "$corpus/queries" -i "$work/idx-default" --json --no-verify | strip_json > "$out/no-verify.json" || true
model=tests/data/tiny_resnet.onnx
"$bin" --model "$model" index "$corpus/db" -i "$work/idx-model" -q >/dev/null
"$bin" --model "$model" info -i "$work/idx-model" --json | grep -E '"content_digest"' > "$out/model.info"
"$bin" --model "$model" check "$corpus/queries" -i "$work/idx-model" --csv > "$out/model.csv" || true
"$bin" --model "$model" check "$corpus/queries" -i "$work/idx-model" --json | strip_json > "$out/model.json" || true
echo "model: $(tr -d ' \n' < "$out/model.info")"
"$ex/phash_identity" "$corpus/db" "$corpus/queries" > "$out/phash.dump"
"$ex/keypoints_identity" "$out/keypoints.dump" "$corpus/db" "$corpus/queries" > /dev/null
echo "wrote $out ($(ls "$out" | wc -l) files)"
