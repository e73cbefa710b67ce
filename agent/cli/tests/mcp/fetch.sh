#!/usr/bin/env bash
# Installs the MCP servers the client's tests run, pinned, into CACHE/mcp (never into the
# repository): the protocol's reference servers from npm (everything, filesystem) and the official
# Python SDK from PyPI.
# Usage: fetch.sh CACHE   (prints the folder; does nothing when both are already there)
set -euo pipefail
EVERYTHING_VERSION=2026.8.31
MCP_VERSION=2.3.0
root="${1:?usage: fetch.sh CACHE}/mcp"
npm_dir="$root/npm-$EVERYTHING_VERSION"
py_dir="$root/py-$MCP_VERSION"
modules="$npm_dir/node_modules/@modelcontextprotocol"
if [ ! -f "$modules/server-everything/dist/index.js" ] || [ ! -f "$modules/server-filesystem/dist/index.js" ]; then
    rm -rf "$npm_dir.partial"
    mkdir -p "$npm_dir.partial"
    npm install --silent --no-audit --no-fund --prefix "$npm_dir.partial" \
        "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION" \
        "@modelcontextprotocol/server-filesystem@$EVERYTHING_VERSION" >&2
    rm -rf "$npm_dir"
    mv "$npm_dir.partial" "$npm_dir"
fi
if [ ! -d "$py_dir/mcp" ]; then
    rm -rf "$py_dir.partial"
    python3 -m pip install --quiet --disable-pip-version-check --target "$py_dir.partial" \
        "mcp==$MCP_VERSION" >&2
    rm -rf "$py_dir"
    mv "$py_dir.partial" "$py_dir"
fi
echo "$root"
