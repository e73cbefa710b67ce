#!/usr/bin/env bash
# Installs the clients the server's tests drive, pinned, into the cache folder (never into the
# repository): the official OpenAI Python client, the OpenAI Agents SDK and LangChain's OpenAI
# integration from PyPI into CACHE/openai/py-…, and codex CLI from npm into CACHE/openai/codex-….
# Usage: fetch.sh CACHE [codex]   (prints the Python folder, or with `codex` the codex binary;
# does nothing when they are already there)
set -euo pipefail
OPENAI_VERSION=3.51.0
AGENTS_VERSION=0.24.0
LANGCHAIN_OPENAI_VERSION=1.8.1
CODEX_VERSION=0.171.0
cache="${1:?usage: fetch.sh CACHE [codex]}/openai"

if [ "${2:-}" = codex ]; then
    dir="$cache/codex-$CODEX_VERSION"
    if [ ! -d "$dir/node_modules/@openai/codex" ]; then
        command -v npm >/dev/null || { echo "npm is needed to install codex CLI" >&2; exit 1; }
        rm -rf "$dir.partial"
        npm install --silent --no-audit --no-fund --prefix "$dir.partial" \
            "@openai/codex@$CODEX_VERSION" >&2
        rm -rf "$dir"
        mv "$dir.partial" "$dir"
    fi
    echo "$dir/node_modules/.bin/codex"
    exit 0
fi

dir="$cache/py-$OPENAI_VERSION-agents-$AGENTS_VERSION-langchain-$LANGCHAIN_OPENAI_VERSION"
if [ ! -d "$dir/openai" ]; then
    rm -rf "$dir.partial"
    python3 -m pip install --quiet --disable-pip-version-check --target "$dir.partial" \
        "openai==$OPENAI_VERSION" "openai-agents==$AGENTS_VERSION" \
        "langchain-openai==$LANGCHAIN_OPENAI_VERSION" >&2
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
fi
echo "$dir"
