"""An ASGI app served by uvicorn on a free loopback port, in a thread of its own: how the
Slack and GitHub stand-ins run beside a test or the demo."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

START_TIMEOUT_S = 10.0


class ServedApp:
    """`with ServedApp(app) as served: served.base_url` -> "http://127.0.0.1:PORT"."""

    def __init__(self, app: Any, name: str) -> None:
        self.name = name
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    @property
    def base_url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)  # uvicorn offers a flag, not an event, for "started"
        if not self._server.started:
            raise RuntimeError(f"{self.name} did not start serving")
        return self

    def stop(self) -> None:
        """Stop serving. Safe to call twice."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(START_TIMEOUT_S)
        self._socket.close()

    def __enter__(self) -> ServedApp:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServedStandIn:
    """The lifecycle of a stand-in served by a `ServedApp` (`self._served`): `start()`,
    `stop()` (safe to call twice), and use as a context manager."""

    _served: ServedApp

    def start(self) -> Self:
        self._served.start()
        return self

    def stop(self) -> None:
        """Stop serving. Safe to call twice."""
        self._served.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
