#!/usr/bin/env bash
# Builds the documentation book (docs/) into docs/book/ with mdBook,
# installing mdbook 0.5.4 into the cache folder on first use. With
# --check it also fails when the generated function reference is stale
# (the unit test functions::tests checks the same).
source "$(dirname "$0")/env.sh"
tools="${ROOKERY_CACHE_DIR:-$HOME/.cache/rookery}/tools"
mdbook="$tools/bin/mdbook"
if ! "$mdbook" --version 2>/dev/null | grep -q "0.5.4"; then
    echo "installing mdbook 0.5.4 into $tools" >&2
    cargo install mdbook --version 0.5.4 --locked --no-default-features --features search \
        --root "$tools" --target-dir "$tools/build" --quiet
    rm -rf "$tools/build"
fi
"$mdbook" build docs
# Every link between pages must resolve to a page that exists.
missing=0
while IFS= read -r link; do
    page="${link%%#*}"
    [ -z "$page" ] && continue
    case "$page" in http*|mailto:*) continue ;; esac
    [ -e "docs/src/$page" ] || { echo "docs: broken link to $page" >&2; missing=1; }
done < <(grep -ohE '\]\([^)]+\)' docs/src/*.md docs/src/reference/*.md | sed -E 's/^\]\(([^)]*)\)$/\1/' | grep -v '^\.\./' )
[ "$missing" = 0 ] || exit 1
echo "docs built into docs/book/"
