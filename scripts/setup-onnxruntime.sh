#!/usr/bin/env bash
# Installs ONNX Runtime's shared library, which Rookery loads at run time,
# from the official wheel on PyPI into ~/.cache/rookery/onnxruntime/ (or
# $XDG_CACHE_HOME/rookery/onnxruntime/), where the rookery binary looks for
# it. Safe to run again: it does nothing when the library is there.
#
#   scripts/setup-onnxruntime.sh          the CPU build (onnxruntime)
#   scripts/setup-onnxruntime.sh --gpu    the GPU build (onnxruntime-gpu, about 260 MB,
#                                         with the CUDA and TensorRT providers' libraries)
#                                         and NVIDIA's CUDA 13 and cuDNN 9 libraries from
#                                         their wheels (about 1.5 GB) in cuda/ beside it
#
# The GPU build also runs on the CPU; it needs NVIDIA's driver (libcuda.so.1)
# for the GPU. `rookery doctor` says what is missing.
set -euo pipefail
VERSION=1.31.1
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/rookery/onnxruntime"
LIB="$DEST/libonnxruntime.so.$VERSION"
GPU=0
case "${1:-}" in
    --gpu) GPU=1 ;;
    "") ;;
    *) echo "usage: $0 [--gpu]" >&2; exit 2 ;;
esac

if [ -s "$LIB" ] && [ -L "$DEST/libonnxruntime.so" ]; then
    if [ "$GPU" = 0 ] || { [ -s "$DEST/libonnxruntime_providers_cuda.so" ] && [ -d "$DEST/cuda" ]; }; then
        exit 0
    fi
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "setup-onnxruntime: needs python3 with pip to download the onnxruntime wheel from PyPI" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "$GPU" = 1 ]; then
    # The extras name the CUDA and cuDNN wheels this build was made with.
    echo "setup-onnxruntime: downloading onnxruntime-gpu==$VERSION with its CUDA and cuDNN wheels from PyPI" >&2
    python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        "onnxruntime-gpu[cuda,cudnn]==$VERSION" -d "$tmp"
else
    echo "setup-onnxruntime: downloading onnxruntime==$VERSION from PyPI" >&2
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        "onnxruntime==$VERSION" -d "$tmp"
fi
mkdir -p "$DEST"
# Wheels are zips; take only shared libraries from them, each written
# under a temporary name and renamed, so a stopped run leaves no half file.
python3 - "$tmp" "$DEST" "$GPU" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, dest, gpu = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

def extract(wheel, name, target):
    with wheel.open(name) as src, open(target + ".partial", "wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(target + ".partial", target)

runtime = "onnxruntime_gpu-*.whl" if gpu else "onnxruntime-*.whl"
wheels = glob.glob(os.path.join(tmp, runtime))
if len(wheels) != 1:
    sys.exit(f"setup-onnxruntime: expected one {runtime} wheel, found {wheels}")
with zipfile.ZipFile(wheels[0]) as wheel:
    libs = [n for n in wheel.namelist() if n.startswith("onnxruntime/capi/libonnxruntime")]
    if not libs:
        sys.exit("setup-onnxruntime: no libonnxruntime in the wheel")
    for name in libs:
        extract(wheel, name, os.path.join(dest, os.path.basename(name)))
if gpu:
    cuda = os.path.join(dest, "cuda")
    os.makedirs(cuda, exist_ok=True)
    found = 0
    for path in sorted(glob.glob(os.path.join(tmp, "nvidia_*.whl"))):
        with zipfile.ZipFile(path) as wheel:
            for name in wheel.namelist():
                base = os.path.basename(name)
                if name.startswith("nvidia/") and "/lib/" in name and ".so" in base:
                    extract(wheel, name, os.path.join(cuda, base))
                    found += 1
    if found == 0:
        sys.exit("setup-onnxruntime: no CUDA libraries in NVIDIA's wheels")
PY
if [ ! -s "$LIB" ]; then
    echo "setup-onnxruntime: the wheel did not contain libonnxruntime.so.$VERSION" >&2
    exit 1
fi
ln -sfn "libonnxruntime.so.$VERSION" "$DEST/libonnxruntime.so"
echo "setup-onnxruntime: installed $LIB$([ "$GPU" = 1 ] && echo " (GPU build, CUDA libraries in $DEST/cuda)")" >&2
