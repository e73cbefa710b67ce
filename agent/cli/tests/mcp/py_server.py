"""An MCP server written with the official Python SDK (`mcp` on PyPI), for the client's tests.

Run: python3 py_server.py PORT   (streamable HTTP on 127.0.0.1:PORT/mcp)
     python3 py_server.py stdio
"""

import sys

import anyio
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("glm-agent-test-python")


@server.tool()
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@server.tool()
async def grow(ctx: Context) -> str:
    """Add the tool `late` to this server and tell the client its tool list changed."""

    def late(word: str) -> str:
        """A tool that exists only after `grow` ran."""
        return f"late says {word}"

    server.add_tool(late, name="late")
    await ctx.request_context.session.send_tool_list_changed()
    return "added the tool `late`"


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then say so."""
    await anyio.sleep(seconds)
    return f"slept {seconds} s"


@server.tool()
def refuse() -> str:
    """Always fails."""
    raise ValueError("refused on purpose")


if __name__ == "__main__":
    if sys.argv[1:] == ["stdio"]:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
