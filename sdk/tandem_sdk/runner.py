"""`python -m tandem_sdk.runner`: the entry point of a script coordinator process.

The host starts it inside the run's sandbox with a minimal environment:

    TANDEM_TOOLHOST       gRPC target of ToolHost (unix:/...)
    TANDEM_TOKEN_FILE     file holding the run token (never on a command line)
    TANDEM_RESULT_FD      inherited pipe the outcome is written to, as one JSON document
    TANDEM_SCRIPT         the script source, as snapshotted when the workflow loaded
    TANDEM_SCRIPT_ORIGIN  the script's path in the workflow, for tracebacks
    TANDEM_WORKFLOW_DIR   put on sys.path so a script can import its sibling modules
    TANDEM_RLIMITS        JSON {"RLIMIT_AS": bytes, ...} applied before the script loads
    TANDEM_GUARDS         "1": the script is a workflow's guards.py, and the result
                          descriptor a socket the host asks them over (tandem_sdk.guards)

It imports the script, calls `handler(trigger, tools, virtual_files, subagent)` and reports
the JSON-serialisable return value, or the exception with its traceback, or an escalation
(`Escalate`: `{"ok": false, "escalate": {"reason", "context"}}`), for the host to hand the
run to the model.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import guards
from ._lifetime import die_with_parent
from .client import ToolHostClient
from .errors import Escalate
from .script import Subagent, Tools, VirtualFiles

Handler = Callable[[Any, Tools, VirtualFiles, Callable[..., Any]], Any]


def apply_rlimits(spec: str) -> None:
    for name, value in json.loads(spec or "{}").items():
        limit = int(value)
        resource.setrlimit(getattr(resource, name), (limit, limit))


def load_handler(source_path: str, origin: str, workflow_dir: str) -> Handler:
    if workflow_dir:
        sys.path.insert(0, workflow_dir)
    source = Path(source_path).read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "tandem_workflow_script", "__file__": origin}
    exec(compile(source, origin, "exec"), namespace)  # noqa: S102 - running the script is the point
    handler = namespace.get("handler")
    if not callable(handler):
        raise TypeError(f"{origin} defines no handler(trigger, tools, virtual_files, subagent)")
    return handler  # type: ignore[no-any-return]


def run(env: dict[str, str]) -> dict[str, Any]:
    token = Path(env["TANDEM_TOKEN_FILE"]).read_text().strip()
    with ToolHostClient(env["TANDEM_TOOLHOST"], token) as client:
        info = client.get_run()
        handler = load_handler(
            env["TANDEM_SCRIPT"],
            env.get("TANDEM_SCRIPT_ORIGIN", "script.py"),
            env.get("TANDEM_WORKFLOW_DIR", ""),
        )
        output = handler(info.trigger, Tools(client), VirtualFiles(client), Subagent(client))
    try:
        json.dumps(output)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"handler returned a value that is not JSON-serialisable: {error}"
        ) from None
    return {"ok": True, "output": output}


def main() -> int:
    env = dict(os.environ)
    result_fd = int(env["TANDEM_RESULT_FD"])
    try:
        die_with_parent()
        apply_rlimits(env.get("TANDEM_RLIMITS", ""))
        if env.get("TANDEM_GUARDS") == "1":
            return guards.serve(env)
        outcome = run(env)
        code = 0
    except Escalate as escalation:  # not a failure: the run goes on with the model
        outcome = {
            "ok": False,
            "escalate": {"reason": escalation.reason, "context": escalation.context},
        }
        code = 0
    except BaseException as error:
        outcome = {
            "ok": False,
            "type": type(error).__name__,
            "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error)),
        }
        code = 1
    with os.fdopen(result_fd, "w", encoding="utf-8") as result:
        json.dump(outcome, result)
    return code


if __name__ == "__main__":
    sys.exit(main())
