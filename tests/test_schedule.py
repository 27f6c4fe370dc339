"""Schedules: one that cannot give a slot is skipped and logged, never stopping the others,
and a daemon whose background task dies still logs it and shuts down cleanly."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Project
from tandem.cli import serve as serve_module
from tandem.schedule import Scheduler
from tandem.workflows.spec import Trigger, WorkflowSpec


class _State:
    def __init__(self, spec: WorkflowSpec) -> None:
        self.name = spec.name
        self.current = self
        self.spec = spec


class _Registry:
    def __init__(self, *specs: WorkflowSpec) -> None:
        self._states = [_State(s) for s in specs]

    def states(self) -> list[_State]:
        return self._states


class _Runs:
    """The seam the scheduler drives: a registry to read and a trigger to call."""

    def __init__(self, *specs: WorkflowSpec) -> None:
        self.registry = _Registry(*specs)
        self.triggered: list[str] = []

    def trigger(self, workflow: str, payload: Any) -> Any:
        self.triggered.append(workflow)
        return argparse.Namespace(id=f"run-{len(self.triggered)}")


def _spec(name: str, cron: str) -> WorkflowSpec:
    # model_construct skips validation: a schedule that went bad after it was checked.
    trigger = Trigger.model_construct(manual=None, schedule=cron, webhook=None)
    return WorkflowSpec.model_construct(name=name, triggers=[trigger])


def test_a_schedule_that_raises_does_not_stop_another(caplog: pytest.LogCaptureFixture) -> None:
    runs = _Runs(_spec("broken", "0 0 31 2 *"), _spec("ticker", "* * * * * *"))
    scheduler = Scheduler(runs, once_per_slot=False)  # type: ignore[arg-type]
    start = datetime.now(UTC)
    with caplog.at_level(logging.ERROR, logger="tandem.schedule"):
        for second in range(1, 4):
            now = start + timedelta(seconds=second)
            assert scheduler.next_wake(now) <= 1.0
            scheduler.fire_due(now)
    assert runs.triggered == ["ticker"] * 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors  # reported once, not at every tick
    assert "broken" in errors[0] and "0 0 31 2 *" in errors[0]


PLUGIN = """
from tandem_sdk import tool

@tool(side_effects=False)
def ping() -> str:
    \"\"\"Answer.\"\"\"
    return "pong"
"""


def test_shutdown_cleans_up_after_a_background_task_dies(
    project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def scheduler_dies(self: Scheduler) -> None:
        raise RuntimeError("the scheduler broke")

    monkeypatch.setattr(Scheduler, "run_forever", scheduler_dies)
    project.plugin("pinger", PLUGIN)
    config = project.config
    args = argparse.Namespace(no_reload=True, grace=1.0)
    seen: dict[str, Any] = {}

    async def scenario() -> int:
        stop = asyncio.Event()
        daemon = asyncio.create_task(serve_module._serve(config, args, stop))
        async with asyncio.timeout(30):
            while not any("control socket" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.05)
        seen["pids"] = _plugin_pids(config.socket_dir)
        seen["private"] = list(config.socket_dir.glob("h*"))
        stop.set()
        return await daemon

    with caplog.at_level(logging.INFO):
        assert asyncio.run(scenario()) == 0
    died = [r for r in caplog.records if "background task scheduler died" in r.getMessage()]
    assert died and died[0].levelno == logging.ERROR
    assert seen["pids"], "the plugin process was running"
    assert not config.control_socket.exists()
    assert seen["private"] and not any(p.exists() for p in seen["private"])
    for pid in seen["pids"]:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"plugin {pid} outlived"


def _plugin_pids(socket_dir: Path) -> list[int]:
    """Processes serving a plugin socket under `socket_dir`, read from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "tandem_sdk.plugin_server" in cmdline and str(socket_dir) in cmdline:
            pids.append(int(entry.name))
    return pids


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True
