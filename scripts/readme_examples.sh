#!/usr/bin/env bash
# Rewrites the README's generated examples (the sample table and the JSON
# example, between <!-- BEGIN name --> and <!-- END name --> markers) from a
# real run of the bundled sample. Idempotent: a second run changes nothing.
# tests/readme_drift.rs fails when the README and a fresh run differ.
#   scripts/readme_examples.sh          rewrite README.md
#   scripts/readme_examples.sh --check  exit 1 if it would change
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin lookalike --example readme_examples
# Where cargo put them (CARGO_TARGET_DIR may move the target folder).
target="${CARGO_TARGET_DIR:-target}/release"
"$target/examples/readme_examples" "$target/lookalike" "$@"
