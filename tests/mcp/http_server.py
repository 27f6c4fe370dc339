"""A remote MCP server of the tests' own: streamable HTTP on 127.0.0.1, answering only
requests that carry `Authorization: Bearer $HTTP_TOKEN`. Listens before it prints its
port (`http_server.py [PORT]`, 0 or none for any free one), so a client that reads the
port can connect at once."""

import os
import socket
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.responses import PlainTextResponse

app = MCPServer("remote", version="1.0")


@app.tool()
def echo(text: str) -> str:
    """The text it is given."""
    return text


@app.tool()
def shout(text: str) -> str:
    """The text it is given, in capitals."""
    return text.upper()


def guarded(inner: Any, token: str) -> Any:
    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and headers.get(b"authorization") != f"Bearer {token}".encode():
            await PlainTextResponse("unauthorized", status_code=401)(scope, receive, send)
            return
        await inner(scope, receive, send)

    return asgi


async def main(port: int) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(
        guarded(app.streamable_http_app(), os.environ["HTTP_TOKEN"]), log_level="warning"
    )
    await uvicorn.Server(config).serve(sockets=[sock])


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
