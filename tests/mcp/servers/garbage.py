"""A raw JSON-RPC MCP server that writes a line of garbage to stdout before every frame,
and on every call a 100 KB line and then 300 KB of short lines to stderr (more than a
pipe holds: a host that stops reading its stderr blocks it).

Raw on purpose: the `mcp` package's stdio server points fd 1 elsewhere while it serves,
so a tool there cannot write between frames.
"""

import json
import sys

GARBAGE = "this is not JSON-RPC {\n"
ECHO = {
    "name": "echo",
    "description": "Return the value.",
    "inputSchema": {
        "type": "object",
        "properties": {"value": {"type": "integer"}},
        "required": ["value"],
    },
}


def send(message: dict) -> None:
    sys.stdout.write(GARBAGE)
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict) -> dict | None:
    method, params = request.get("method"), request.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "garbage", "version": "1.0"},
        }
    if method == "tools/list":
        return {"tools": [ECHO]}
    if method == "tools/call":
        sys.stderr.write("x" * 100_000 + "\n" + "noise\n" * 50_000)
        sys.stderr.flush()
        value = params["arguments"]["value"]
        return {"content": [{"type": "text", "text": str(value)}], "isError": False}
    if method == "ping":
        return {}
    return None


for line in sys.stdin:
    request = json.loads(line)
    if "id" not in request:
        continue  # a notification
    result = answer(request)
    if result is None:
        error = {"code": -32601, "message": f"no method {request.get('method')}"}
        send({"jsonrpc": "2.0", "id": request["id"], "error": error})
    else:
        send({"jsonrpc": "2.0", "id": request["id"], "result": result})
