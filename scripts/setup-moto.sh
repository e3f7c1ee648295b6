#!/usr/bin/env bash
# Installs moto's S3-compatible server (moto[server] from PyPI) into a
# virtual environment at ~/.cache/rookery/moto/ (or
# $XDG_CACHE_HOME/rookery/moto/), where the object store tests find
# bin/moto_server and start it on 127.0.0.1 themselves. Safe to run
# again: it does nothing when the server is already there.
set -euo pipefail
VERSION=5.2.5
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/rookery/moto"

if [ -x "$DEST/bin/moto_server" ] && "$DEST/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$VERSION')" 2>/dev/null; then
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "setup-moto: needs python3 (with venv and pip) to install moto[server] from PyPI" >&2
    exit 1
fi
echo "setup-moto: installing moto[server]==$VERSION from PyPI into $DEST" >&2
rm -rf "$DEST"
python3 -m venv "$DEST"
"$DEST/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$VERSION"
"$DEST/bin/moto_server" --help >/dev/null
