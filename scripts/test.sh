#!/usr/bin/env bash
# Builds Rookery and runs every test: unit tests, the .slt files and the
# CLI tests that drive the real binary. Installs ONNX Runtime's library
# (the model tests run it) and moto's S3-compatible server (the object
# store tests start it on 127.0.0.1) first. Extra arguments go to cargo test.
source "$(dirname "$0")/env.sh"
scripts/setup-onnxruntime.sh
scripts/setup-moto.sh
cargo test --workspace "$@"
