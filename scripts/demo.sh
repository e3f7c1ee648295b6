#!/usr/bin/env bash
# The main job: the sea-lion pipeline on data/sealions (the committed
# generated sample set). Builds Rookery first if needed (the same build the
# tests use). Results go to out/sealions/.
source "$(dirname "$0")/env.sh"
# The tests' build (dev-dependencies change feature unification; building
# the binary alone would compile DataFusion a second time).
cargo test --workspace --no-run
rookery="$TARGET_DIR/debug/rookery"
started=$(date +%s)
"$rookery" -f sql/sealions/01_tables.sql sql/sealions/02_dots.sql sql/sealions/03_thumbnails.sql "$@"
echo "done in $(( $(date +%s) - started )) s; thumbnails in out/sealions/thumbnails.parquet" >&2
