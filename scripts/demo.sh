#!/usr/bin/env bash
# The main job: `rookery demo`, the sea-lion pipeline (sql/sealions/01 to 06)
# on data/sealions, the committed generated sample set: dots, thumbnails,
# CNN training, counting the test images to out/sealions/sub.csv, scores.
# Installs ONNX Runtime's library and builds Rookery first when needed (the
# same build the tests use). Extra arguments go to `rookery demo`.
source "$(dirname "$0")/env.sh"
scripts/setup-onnxruntime.sh
# The tests' build (dev-dependencies change feature unification; building
# the binary alone would compile DataFusion a second time).
cargo test --workspace --no-run
exec "$TARGET_DIR/debug/rookery" demo "$@"
