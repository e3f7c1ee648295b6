#!/usr/bin/env bash
# Builds Rookery and runs every test: unit tests, the .slt files and the
# CLI tests that drive the real binary. Extra arguments go to cargo test.
source "$(dirname "$0")/env.sh"
cargo test --workspace "$@"
