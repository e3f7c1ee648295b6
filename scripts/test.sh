#!/usr/bin/env bash
# Builds Rookery and runs every test: unit tests, the .slt files and the
# CLI tests that drive the real binary. Installs ONNX Runtime's library
# first (the model tests run it). Extra arguments go to cargo test.
source "$(dirname "$0")/env.sh"
scripts/setup-onnxruntime.sh
cargo test --workspace "$@"
