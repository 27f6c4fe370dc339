"""How ToolHost refuses and fails calls, as a script sees it: typed SDK exceptions, with
the gRPC status codes underneath, and the run deciding what happens next."""

from __future__ import annotations

from conftest import ADD_PLUGIN, Project

PLUGINS = {
    "good": ADD_PLUGIN
    + '''
@tool
def explode(reason: str) -> None:
    """Fail on purpose.

    Args:
        reason: the message of the error.
    """
    raise LookupError(reason)
''',
    "secret": '''
from tandem_sdk import tool

@tool
def launch() -> str:
    """Something no workflow in these tests is allowed to call."""
    return "launched"
''',
}

PROBE_SCRIPT = """
import os
from tandem_sdk import ToolHostClient
from tandem_sdk import errors

def outcome(call):
    try:
        return {"ok": call()}
    except errors.TandemError as error:
        return {"error": type(error).__name__, "message": str(error)}

def handler(trigger, tools, virtual_files, subagent):
    target = os.environ["TANDEM_TOOLHOST"]
    return {
        "in_scope": outcome(lambda: tools.good.add(a=2, b=3)),
        "out_of_scope": outcome(lambda: tools.secret.launch()),
        "unknown": outcome(lambda: tools.good.nope()),
        "wrong_type": outcome(lambda: tools.good.add(a="two", b=3)),
        "missing": outcome(lambda: tools.good.add(a=1)),
        "extra": outcome(lambda: tools.good.add(a=1, b=2, c=3)),
        "bad_token": outcome(lambda: ToolHostClient(target, "nope.nope").list_tools()),
        "no_secret": outcome(lambda: ToolHostClient(target, "").list_tools()),
        "ended_token": outcome(
            lambda: ToolHostClient(target, trigger["ended_token"]).list_tools()
        ) if trigger else None,
    }
"""


def _setup(project: Project) -> None:
    for name, code in PLUGINS.items():
        project.plugin(name, code)
    project.workflow("probe", tools=["good.*"], script=PROBE_SCRIPT)
    project.workflow(
        "leak_token",
        tools=["good.*"],
        script="""
        import os
        def handler(trigger, tools, virtual_files, subagent):
            return open(os.environ["TANDEM_TOKEN_FILE"]).read()
        """,
    )


def test_refusals_map_to_typed_errors(project: Project, start_daemon) -> None:
    _setup(project)
    daemon = start_daemon(project)
    ended = daemon.run("leak_token")
    assert ended.status == "succeeded"

    record = daemon.run("probe", {"ended_token": ended.output})
    assert record.status == "succeeded", record.error
    out = record.output
    assert out["in_scope"] == {"ok": 5}
    assert out["out_of_scope"]["error"] == "ToolNotInScope"
    assert "secret.launch" in out["out_of_scope"]["message"]
    assert out["unknown"]["error"] == "NotFound"
    assert out["wrong_type"]["error"] == "InvalidArguments"
    assert "a" in out["wrong_type"]["message"] and "integer" in out["wrong_type"]["message"]
    assert out["missing"]["error"] == "InvalidArguments"
    assert "'b' is a required property" in out["missing"]["message"]
    assert out["extra"]["error"] == "InvalidArguments"
    assert out["bad_token"]["error"] == "Unauthenticated"
    assert out["no_secret"]["error"] == "Unauthenticated"
    assert out["ended_token"]["error"] == "Unauthenticated"

    refused = [e.data for e in record.events if e.kind == "tool.refused"]
    assert [r["error"] for r in refused] == [
        "ToolNotInScope",
        "NotFound",
        "InvalidArguments",
        "InvalidArguments",
        "InvalidArguments",
    ]


def test_tool_failure_is_a_result_the_script_decides_on(project: Project, start_daemon) -> None:
    _setup(project)
    project.workflow(
        "recovers",
        tools=["good.*"],
        script="""
        from tandem_sdk import ToolError
        def handler(trigger, tools, virtual_files, subagent):
            try:
                tools.good.explode(reason="no such row")
            except ToolError as error:
                caught = {"tool": error.tool, "type": error.type, "reason": error.reason}
            return {"caught": caught, "after": tools.good.add(a=1, b=1)}
        """,
    )
    project.workflow(
        "gives_up",
        tools=["good.*"],
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            tools.good.explode(reason="cannot go on")
        """,
    )
    daemon = start_daemon(project)

    recovered = daemon.run("recovers")
    assert recovered.status == "succeeded", recovered.error
    assert recovered.output == {
        "caught": {"tool": "good.explode", "type": "LookupError", "reason": "no such row"},
        "after": 2,
    }
    failed_result = next(e.data for e in recovered.events if e.kind == "tool.result")
    assert failed_result["ok"] is False and failed_result["error_type"] == "LookupError"

    gave_up = daemon.run("gives_up")
    assert gave_up.status == "failed"
    assert "ToolError" in gave_up.error and "cannot go on" in gave_up.error
    finished = gave_up.events[-1].data
    assert "Traceback" in finished["details"] and "script.py" in finished["details"]


def test_max_tool_calls_fails_the_run_even_if_the_script_swallows_it(
    project: Project, start_daemon
) -> None:
    _setup(project)
    project.workflow(
        "greedy",
        tools=["good.*"],
        limits={"max_tool_calls": 3},
        script="""
        from tandem_sdk import LimitExceeded
        def handler(trigger, tools, virtual_files, subagent):
            done = 0
            for _ in range(10):
                try:
                    tools.good.add(a=1, b=1)
                    done += 1
                except LimitExceeded:
                    pass
            return done
        """,
    )
    record = start_daemon(project).run("greedy")
    assert record.status == "failed"
    assert "max_tool_calls (3)" in record.error
    assert sum(1 for e in record.events if e.kind == "tool.call") == 3


def test_protocol_mismatch_is_readable(project: Project, start_daemon) -> None:
    project.workflow(
        "old_sdk",
        script="""
        import os
        from tandem_sdk import ToolHostClient, errors

        def handler(trigger, tools, virtual_files, subagent):
            token = open(os.environ["TANDEM_TOKEN_FILE"]).read()
            client = ToolHostClient(os.environ["TANDEM_TOOLHOST"], token)
            client._metadata = (("authorization", "Bearer " + token), ("tandem-protocol", "99"))
            try:
                client.list_tools()
            except errors.InterfaceError as error:
                return str(error)
        """,
    )
    message = start_daemon(project).run("old_sdk").output
    assert "protocol v99" in message and "host speaks v1" in message


def test_an_answer_over_the_message_limit_says_so(project: Project, start_daemon) -> None:
    project.plugin(
        "big",
        '''
from tandem_sdk import tool

@tool(side_effects=False)
def blob(size: int) -> str:
    """A string of `size` characters.

    Args:
        size: how many.
    """
    return "x" * size
''',
    )
    project.workflow(
        "large",
        tools=["big.*"],
        script="""
        from tandem_sdk import errors
        def handler(trigger, tools, virtual_files, subagent):
            try:
                tools.big.blob(size=5 * 1024 * 1024)
                refused = None
            except errors.ToolUnavailable as error:
                refused = str(error)
            return {"refused": refused, "after": len(tools.big.blob(size=10))}
        """,
    )
    daemon = start_daemon(project)
    record = daemon.run("large")
    assert record.status == "succeeded", record.error
    assert "over the message limit of 4194304 bytes" in record.output["refused"]
    assert "TANDEM_MAX_MESSAGE_BYTES" in record.output["refused"]
    assert record.output["after"] == 10  # the plugin serves on
