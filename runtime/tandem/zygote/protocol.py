"""Messages between the daemon and the zygote: one JSON document per SOCK_SEQPACKET
packet, descriptors beside it (SCM_RIGHTS).

daemon -> zygote, once:  {"seccomp": base64 BPF program or "", "root": empty folder}
zygote -> daemon, once:  {"ready": true, "namespace": null | why it cannot fork into one}
daemon -> zygote, a run: {"spec": ForkSpec.to_json()} + [status socket, stdout, stderr,
                         result pipe]
zygote -> status socket: {"pid": N} or {"error": "..."}, later {"exit": code}
"""

from __future__ import annotations

import json
import socket
from typing import Any

MAX_MESSAGE_BYTES = 256 * 1024
MAX_FDS = 8


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], fds or [])


def decode(data: bytes) -> dict[str, Any] | None:
    """A packet's message, or None for the end of the stream."""
    if not data:
        return None
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {type(message).__name__}")
    return message


def receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE_BYTES, MAX_FDS)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            socket.close(fd)
        raise ValueError("a zygote message was truncated")
    return decode(data), fds
