#!/usr/bin/env bash
# Installs ONNX Runtime's shared library, which Rookery loads at run time,
# from the official onnxruntime wheel on PyPI into
# ~/.cache/rookery/onnxruntime/ (or $XDG_CACHE_HOME/rookery/onnxruntime/),
# where the rookery binary looks for it. Safe to run again: it does nothing
# when the library is already there.
set -euo pipefail
VERSION=1.31.1
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/rookery/onnxruntime"
LIB="$DEST/libonnxruntime.so.$VERSION"

if [ -s "$LIB" ] && [ -L "$DEST/libonnxruntime.so" ]; then
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "setup-onnxruntime: needs python3 with pip to download the onnxruntime wheel from PyPI" >&2
    exit 1
fi

echo "setup-onnxruntime: downloading onnxruntime==$VERSION from PyPI" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    "onnxruntime==$VERSION" -d "$tmp"
mkdir -p "$DEST"
# The wheel is a zip; take only the runtime's shared libraries from it.
python3 - "$tmp" "$DEST" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(tmp, "onnxruntime-*.whl"))
if len(wheels) != 1:
    sys.exit(f"setup-onnxruntime: expected one onnxruntime wheel, found {wheels}")
with zipfile.ZipFile(wheels[0]) as wheel:
    libs = [n for n in wheel.namelist() if n.startswith("onnxruntime/capi/libonnxruntime")]
    if not libs:
        sys.exit("setup-onnxruntime: no libonnxruntime in the wheel")
    for name in libs:
        target = os.path.join(dest, os.path.basename(name))
        with wheel.open(name) as src, open(target + ".partial", "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(target + ".partial", target)
PY
if [ ! -s "$LIB" ]; then
    echo "setup-onnxruntime: the wheel did not contain libonnxruntime.so.$VERSION" >&2
    exit 1
fi
ln -sfn "libonnxruntime.so.$VERSION" "$DEST/libonnxruntime.so"
echo "setup-onnxruntime: installed $LIB" >&2
