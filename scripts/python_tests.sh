#!/usr/bin/env bash
# The Python package's tests (python/tests), as CI runs them after `cargo test`:
# a venv with maturin, pytest, numpy, Pillow and Ray (for lookalike.ray's
# tests on a local two-node cluster) from PyPI; the abi3 wheel built
# with the dev profile into the same target folder (so it reuses the
# dependencies `cargo test` compiled); the CLI binary for the tests that
# compare the package with it.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/python-venv"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check maturin pytest numpy pillow ray

cargo build --bin lookalike
rm -rf "$target/wheels"
"$venv/bin/maturin" build -q -m python/Cargo.toml --profile dev -o "$target/wheels" -i "$venv/bin/python"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$target"/wheels/lookalike-*.whl

LOOKALIKE_BIN="$target/debug/lookalike" "$venv/bin/python" -m pytest -q python/tests "$@"
