#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (cargo-fuzz / libFuzzer), each for a given
# time, and prints libFuzzer's final statistics per target.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all)
#   scripts/fuzz.sh 1200 decode index                    (20 minutes each)
#
# Targets: decode onnx safetensors index tar (see fuzz/README.md). Findings land
# in fuzz/artifacts/TARGET/; the corpus grows in fuzz/corpus/TARGET/ (both
# ignored by git; copy a finding's minimised input into fuzz/seeds/TARGET/
# once it is fixed, so tests/fuzz_seeds.rs keeps it fixed).
#
# The stable toolchain builds the targets: RUSTC_BOOTSTRAP=1 lets it accept
# the sanitizer flags cargo-fuzz passes (ASan by default; FUZZ_SANITIZER=none
# builds without one).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode onnx safetensors index tar)
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

# The index target mutates a real index: build one from a few sample images.
work=fuzz/work
if [[ " ${targets[*]} " == *" index "* ]]; then
  cargo build --release --quiet --bin lookalike --example fuzz_seeds
  bin="${CARGO_TARGET_DIR:-target}/release/lookalike"
  rm -rf "$work"
  mkdir -p "$work/images"
  cp examples/sample/training/train_0[0-5].jpg "$work/images/"
  "$bin" index "$work/images" --index "./$work/template" >/dev/null
  "${CARGO_TARGET_DIR:-target}/release/examples/fuzz_seeds" \
    --index-seeds "$work/template" "$work/index-seeds" >/dev/null
  export LOOKALIKE_FUZZ_TEMPLATE="$PWD/$work/template"
fi

for t in "${targets[@]}"; do
  seeds="fuzz/seeds/$t"
  [ "$t" = index ] && seeds="$work/index-seeds"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  echo "== $t: ${secs} s"
  log="fuzz/artifacts/$t/last-run.log"
  rc=0
  cargo fuzz run --fuzz-dir fuzz -O -s "$sanitizer" "$t" "fuzz/corpus/$t" "$seeds" -- \
    -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -malloc_limit_mb=2048 \
    -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E "^(stat::|#[0-9]+ +DONE|==[0-9]+==|SUMMARY|INFO: seed corpus)|panicked|Test unit written" "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -30 "$log"
    echo "$t: exit $rc, a finding (see fuzz/artifacts/$t/)"
    exit 1
  fi
done
