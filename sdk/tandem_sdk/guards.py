"""A workflow's guard process: the runner started with TANDEM_GUARDS=1 (see runner.py).

It loads guards.py (TANDEM_SCRIPT) and answers the host over TANDEM_RESULT_FD, a socket,
one JSON line each way per question:

    guard: {"ready": true} once guards.py is loaded, or {"broken": "why"}
    host:  {"guard": "slack_add_reaction", "call": {"tool", "arguments"},
            "history": [the calls made since the last question]}
    guard: {"refuse": null | "reason"}  or  {"failed": "ZeroDivisionError: ..."}

The process keeps the run's history, so each question carries only what is new. It never
reaches ToolHost: a guard decides from the call and the history alone.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Guard = Callable[[dict[str, Any], list[dict[str, Any]]], Any]


def load_guards(source_path: str, origin: str, workflow_dir: str) -> dict[str, Guard]:
    if workflow_dir:
        sys.path.insert(0, workflow_dir)
    source = Path(source_path).read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "tandem_workflow_guards", "__file__": origin}
    exec(compile(source, origin, "exec"), namespace)  # noqa: S102 - running guards is the point
    return {name: value for name, value in namespace.items() if callable(value)}


def answer(guards: dict[str, Guard], name: str, call: dict[str, Any], history: Any) -> Any:
    """One guard's verdict as the host reads it."""
    guard = guards.get(name)
    if guard is None:
        return {"failed": f"guards.py defines no {name}"}
    try:
        verdict = guard(call, history)
    except Exception as error:
        return {"failed": f"{type(error).__name__}: {error}"}
    if verdict is None or isinstance(verdict, str):
        return {"refuse": verdict}
    return {"failed": f"returned {type(verdict).__name__}, not a reason (str) or None"}


def serve(env: dict[str, str]) -> int:
    """Answer questions until the host closes the socket."""
    channel = socket.socket(fileno=int(env["TANDEM_RESULT_FD"]))
    history: list[dict[str, Any]] = []
    with channel, channel.makefile("rb") as incoming, channel.makefile("wb") as outgoing:
        try:
            guards = load_guards(
                env["TANDEM_SCRIPT"],
                env.get("TANDEM_SCRIPT_ORIGIN", "guards.py"),
                env.get("TANDEM_WORKFLOW_DIR", ""),
            )
        except BaseException as error:
            outgoing.write(json.dumps({"broken": f"{type(error).__name__}: {error}"}).encode())
            outgoing.flush()
            return 1
        outgoing.write(b'{"ready": true}\n')
        outgoing.flush()
        for line in incoming:
            question = json.loads(line)
            history.extend(question["history"])
            reply = answer(guards, question["guard"], question["call"], history)
            outgoing.write(json.dumps(reply).encode() + b"\n")
            outgoing.flush()
    return 0
