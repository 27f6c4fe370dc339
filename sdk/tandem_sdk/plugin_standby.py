"""`python -m tandem_sdk.plugin_standby --start-fd N`: a plugin server started ahead of need.

It pays for what every plugin server pays before it can load a plugin (the interpreter,
gRPC, pydantic, deriving a first tool schema), then waits on the inherited pipe `N` for
the host's start: one line, `{"argv": [...], "env": {...}, "cwd": "..."}`. It adds `env`
(the plugin's secrets) to its environment, moves to `cwd` (the plugin's data folder) and
serves as `python -m tandem_sdk.plugin_server ARGV...` would, with exactly the environment
and folder such a process would have been given. End of file
instead means the host no longer needs it: it exits 0.

The host starts one beside a plugin whose code is being edited, so a hot reload waits only
for the new code itself, and an embedded host starts them before its own imports
(docs/architecture.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import plugin_server
from ._lifetime import die_with_parent, watch_parent
from .plugin import define_tool, schema_json, tool


def _warm() -> None:
    """Derive a throwaway tool's schema: pydantic imports most of its machinery on first use."""

    @tool(read_only=True)
    def echo(text: str, times: int = 1) -> list[str]:
        """Repeat a text.

        Args:
            text: what to repeat.
            times: how often.
        """
        return [text] * times

    schema_json(define_tool("standby", echo))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tandem_sdk.plugin_standby")
    parser.add_argument("--start-fd", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent()  # a daemon killed by SIGKILL leaves no standby behind
    watch_parent()  # and when that signal cannot reach it (a plugin's own uid)
    _warm()
    with os.fdopen(args.start_fd, "rb") as start:
        line = start.readline()
    if not line:
        return 0
    start = json.loads(line)
    if not (isinstance(start, dict) and isinstance(start.get("argv"), list)):
        print("plugin standby: the start is not {argv, env}", file=sys.stderr)
        return 2
    os.environ.update({str(k): str(v) for k, v in start.get("env", {}).items()})
    if start.get("cwd"):
        os.chdir(start["cwd"])
    return plugin_server.main([str(argument) for argument in start["argv"]])


if __name__ == "__main__":
    sys.exit(main())
