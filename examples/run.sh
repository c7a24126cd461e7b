#!/usr/bin/env bash
# The README's demo: index the sample training images, then check the sample
# "generated" images against them. Builds lookalike first (release mode).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
# Where cargo put it (CARGO_TARGET_DIR may move the target folder).
bin="${CARGO_TARGET_DIR:-target}/release/lookalike"
rm -rf indexes/sample
"$bin" index examples/sample/training --index sample
echo
"$bin" check examples/sample/generated --index sample --all
