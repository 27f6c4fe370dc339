"""Helpers for LLM runs: a Messages API stand-in and a real daemon pointed at it.

Test modules import it (a second conftest.py would shadow the top one's
`from conftest import Project`), define a module-scoped `llm` fixture on `llm_host`, and
load this module with `pytest_plugins` for the `api` and `daemon` fixtures built on it
(PYTEST_DONT_REWRITE: it has no asserts, and is imported before it is loaded)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ADD_PLUGIN, Daemon, Project
from tandem.testing import AnthropicStandIn

# Tools for the model: arithmetic, an echo, a tool that fails, one that answers only when
# called concurrently, and one no workflow here may call (the `vault` plugin).
UTIL_PLUGIN = (
    ADD_PLUGIN
    + '''
import os
import threading

from tandem_sdk import RunContext

_barriers = {}
_lock = threading.Lock()

@tool(side_effects=False)
def echo(text: str) -> dict:
    """Echo text back.

    Args:
        text: what to echo.
    """
    return {"echo": text}

@tool
def explode(reason: str) -> None:
    """Fail on purpose.

    Args:
        reason: the message of the error.
    """
    raise LookupError(reason)

@tool
def whoami(ctx: RunContext) -> dict:
    """Say which run is calling."""
    return {"run": ctx.run_id, "workflow": ctx.workflow}

@tool(side_effects=False)
def meet(name: str, parties: int) -> str:
    """Return only once `parties` calls of meet are in flight at the same time.

    Args:
        name: returned as is.
        parties: how many concurrent calls to wait for.
    """
    with _lock:
        barrier = _barriers.setdefault(parties, threading.Barrier(parties, timeout=20))
    barrier.wait()
    return name

@tool(side_effects=False)
def environment() -> dict:
    """The environment variables this plugin process sees."""
    return dict(os.environ)
'''
)

VAULT_PLUGIN = '''
from tandem_sdk import tool

@tool
def open_door() -> str:
    """Something no workflow in these tests is allowed to call."""
    return "opened"
'''


@dataclass
class LlmHost:
    project: Project
    api: AnthropicStandIn
    daemon: Daemon


@contextlib.contextmanager
def llm_host(root: Path, define: Callable[[Project], object], **env: str) -> Iterator[LlmHost]:
    """A project with the test plugins and the workflows `define` writes, a stand-in, and a
    real `tandem serve` whose model API is the stand-in (so nothing leaves this host).

    Modules share one per module (a daemon takes a while to start): each test resets the
    stand-in and uses its own workflow."""
    project = Project(root)
    project.plugin("util", UTIL_PLUGIN)
    project.plugin("vault", VAULT_PLUGIN)
    define(project)
    with AnthropicStandIn() as api:
        daemon = Daemon(project, env={**api.env, **env})
        try:
            yield LlmHost(project, api, daemon)
        finally:
            daemon.close()


@pytest.fixture
def api(llm: LlmHost) -> AnthropicStandIn:
    """The module's stand-in, reset for this test."""
    llm.api.reset()
    return llm.api


@pytest.fixture
def daemon(llm: LlmHost, api: AnthropicStandIn) -> Daemon:
    """The module's daemon, after `api` was reset for this test."""
    return llm.daemon
