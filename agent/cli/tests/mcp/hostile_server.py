"""The worst MCP server over stdio we can write: one tool whose input schema is a `$ref` bomb
(eight properties referring to the next definition, nine deep: 8^8 nodes once inlined, from a
few KB), a tool list whose cursor never ends, and a tool whose result carries 15 MiB of
structured content, much of it small values."""

import json
import sys


def bomb():
    defs = {}
    for level in range(9):
        props = {f"p{p}": {"$ref": f"#/$defs/d{level + 1}"} for p in range(8)}
        defs[f"d{level}"] = {"type": "object", "properties": props}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs}


def answer(message):
    method = message.get("method")
    if method == "initialize":
        return {
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": "hostile", "version": "1"},
        }
    if method == "tools/list":
        cursor = (message.get("params") or {}).get("cursor")
        page = int(cursor) if cursor else 0
        tools = [{"name": f"t{page}", "description": "a page", "inputSchema": {"type": "object"}}]
        if page == 0:
            tools.append({"name": "bomb", "description": "refs", "inputSchema": bomb()})
            tools.append({"name": "huge", "description": "16 MB", "inputSchema": {"type": "object"}})
        return {"tools": tools, "nextCursor": str(page + 1)}
    if method == "tools/call":
        # Small values: a JSON tree of them costs many times their text.
        return {
            "content": [{"type": "text", "text": "done"}],
            "structuredContent": {"blob": "x" * (8 << 20), "values": [0] * (2 << 20)},
        }
    return {}


for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    reply = {"jsonrpc": "2.0", "id": message["id"], "result": answer(message)}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
