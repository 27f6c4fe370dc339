"""A host running in a background thread of this process, for CLI commands when no daemon
is running. The CLI talks to it over its private Control socket, exactly as to a daemon."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Collection, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

from .config import ProjectConfig
from .host import Host


class EmbeddedHost:
    def __init__(
        self,
        config: ProjectConfig,
        plugins: Collection[str] | None = None,
        *,
        zygote: bool = False,
    ) -> None:
        """`plugins`: start only these (a command about one workflow needs only its own).
        `zygote`: fork runs from a zygote, as a daemon does; a single run is faster without."""
        self.host = Host(config, daemon=False, plugins=plugins, zygote=zygote)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tandem-host", daemon=True
        )

    @property
    def control_socket(self) -> Path:
        return self.host.control_socket

    def __enter__(self) -> EmbeddedHost:
        self._thread.start()
        try:
            self._call(self.host.start())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._call(self.host.stop(grace=0))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        future: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(
            coroutine, self._loop
        )
        future.result()
