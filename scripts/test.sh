#!/usr/bin/env bash
# Builds Rookery and runs every check and test: formatting (cargo fmt),
# lints (clippy, warnings are errors), unit tests (among them the check
# that docs/src/reference/functions.md is what the code says), the .slt
# files, the CLI tests that drive the real binary, the docs book (mdBook,
# with its links checked) and the Python package's pytest suite (with the
# example notebook). Installs ONNX Runtime's library (the model tests run
# it), moto's S3-compatible server (the object store tests start it on
# 127.0.0.1), mdbook and the Python package with its test dependencies
# (scripts/setup-python.sh) first. Extra arguments go to cargo test.
source "$(dirname "$0")/env.sh"
cargo fmt --all --check
scripts/setup-onnxruntime.sh
scripts/setup-moto.sh
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/rookery/py"
scripts/setup-python.sh "$VENV"
# The same interpreter as maturin's build, so pyo3 is not built twice.
export PYO3_PYTHON="$VENV/bin/python"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace "$@"
scripts/docs.sh
ROOKERY_BIN="$TARGET_DIR/debug/rookery" "$VENV/bin/python" -m pytest -q python/tests
