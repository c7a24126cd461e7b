#!/usr/bin/env bash
# The README's demo: index the sample training images, then check the sample
# "generated" images against them. Builds lookalike first (release mode).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
# Where cargo put it (CARGO_TARGET_DIR may move the target folder).
bin="${CARGO_TARGET_DIR:-target}/release/lookalike"
# A fresh index named "sample", where `-i sample` finds it from any folder
# (README, "Index location"): $LOOKALIKE_HOME/indexes/sample.
if [ -n "${LOOKALIKE_HOME:-}" ]; then home="$LOOKALIKE_HOME"
elif [[ "${XDG_DATA_HOME:-}" == /* ]]; then home="$XDG_DATA_HOME/lookalike"
else home="$HOME/.local/share/lookalike"
fi
rm -rf "$home/indexes/sample"
"$bin" index examples/sample/training --index sample
echo
"$bin" check examples/sample/generated --index sample --all
