# Sourced by the other scripts: toolchain checks and the shared target dir.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "Rookery needs Rust (cargo). Install it with rustup: https://rustup.rs" >&2
        exit 1
    fi
fi

# Keep build output between clean clones when a cache folder can be used;
# a cold build works the same, only slower.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
    cache="${ROOKERY_CACHE_DIR:-$HOME/.cache/rookery}"
    if mkdir -p "$cache/target" 2>/dev/null && [ -w "$cache/target" ]; then
        export CARGO_TARGET_DIR="$cache/target"
    fi
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
