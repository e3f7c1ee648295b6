#!/usr/bin/env bash
# Builds the `rookery` Python package (python/, pyo3 + maturin, abi3 for
# CPython 3.10+) and installs it into a virtual environment: the one given
# as the first argument (for example "$VIRTUAL_ENV"), or
# ~/.cache/rookery/py/, created here with python/requirements-dev.txt.
# It builds with the same target folder, profile and features as
# `cargo test --workspace`, so DataFusion is compiled once for both.
# Safe to run again: cargo rebuilds only what changed.
source "$(dirname "$0")/env.sh"
VENV="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/rookery/py}"
if ! command -v python3 >/dev/null 2>&1; then
    echo "setup-python: needs python3 (3.10 or later, with venv and pip)" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-python: creating a virtual environment in $VENV" >&2
    python3 -m venv "$VENV"
fi
stamp="$VENV/.rookery-requirements"
if ! cmp -s python/requirements-dev.txt "$stamp" 2>/dev/null; then
    echo "setup-python: installing python/requirements-dev.txt into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r python/requirements-dev.txt
    cp python/requirements-dev.txt "$stamp"
fi
# pyo3 is built for this interpreter, by cargo test as by maturin.
export PYO3_PYTHON="$VENV/bin/python"
export VIRTUAL_ENV="$VENV"
"$VENV/bin/maturin" develop --manifest-path python/Cargo.toml
