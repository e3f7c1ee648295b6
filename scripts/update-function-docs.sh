#!/usr/bin/env bash
# Writes docs/src/reference/functions.md from the functions' #[user_doc]
# and option declarations, as DataFusion's dev/update_function_docs.sh
# does. A unit test (functions::tests) fails when the committed page
# differs from what the code says.
source "$(dirname "$0")/env.sh"
# Built as the tests build it (the whole workspace's features), so no
# dependency is compiled a second time.
cargo test --workspace --no-run --quiet
"$TARGET_DIR/debug/examples/function_docs" > docs/src/reference/functions.md.new
mv docs/src/reference/functions.md.new docs/src/reference/functions.md
echo "wrote docs/src/reference/functions.md"
