#!/usr/bin/env bash
# Installs the official OpenAI Python client the server's tests drive, pinned, into CACHE/openai
# (never into the repository).
# Usage: fetch.sh CACHE   (prints the folder; does nothing when it is already there)
set -euo pipefail
OPENAI_VERSION=3.51.0
dir="${1:?usage: fetch.sh CACHE}/openai/py-$OPENAI_VERSION"
if [ ! -d "$dir/openai" ]; then
    rm -rf "$dir.partial"
    python3 -m pip install --quiet --disable-pip-version-check --target "$dir.partial" \
        "openai==$OPENAI_VERSION" >&2
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
fi
echo "$dir"
