#!/usr/bin/env bash
# Installs llama.cpp's server (the PyPI package xllamacpp: a prebuilt CPU build of llama.cpp
# with llama-server's HTTP API) and the gguf writer, pinned, into CACHE/llamacpp (never into the
# repository).
# Usage: fetch.sh CACHE   (prints the folder; does nothing when it is already there)
set -euo pipefail
XLLAMACPP_VERSION=2026.10.11549
GGUF_VERSION=0.19.0
NUMPY_VERSION=2.4.6
dir="${1:?usage: fetch.sh CACHE}/llamacpp/py-$XLLAMACPP_VERSION-$GGUF_VERSION"
if [ ! -d "$dir/xllamacpp" ] || [ ! -d "$dir/gguf" ]; then
    rm -rf "$dir.partial"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --target "$dir.partial" \
        "xllamacpp==$XLLAMACPP_VERSION" "gguf==$GGUF_VERSION" "numpy==$NUMPY_VERSION" >&2
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
fi
echo "$dir"
