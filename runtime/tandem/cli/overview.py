"""`tandem workflows`, `tools`, `status` and `check`: what the project holds and how the
host is."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, EXIT_RUN_FAILED, control, rpc_error

if TYPE_CHECKING:
    from tandem.config import ProjectConfig


def add_parser(commands: Any) -> None:
    workflows = commands.add_parser("workflows", help="list workflows, with load errors")
    workflows.add_argument("--json", action="store_true")

    tools = commands.add_parser("tools", help="list tools (those in a workflow's scope, if given)")
    tools.add_argument("workflow", nargs="?", default="")
    tools.add_argument("--json", action="store_true")

    status = commands.add_parser("status", help="the host's health: runs, plugins, restarts")
    status.add_argument("--json", action="store_true")

    check = commands.add_parser(
        "check", help="validate workflows and plugins; non-zero on any error"
    )
    check.add_argument(
        "--sandbox",
        action="store_true",
        help="report the isolation tiers this machine supports instead",
    )


def cmd_workflows(config: ProjectConfig, args: argparse.Namespace) -> int:
    from tandem_sdk._pb import control_pb2

    with control(config) as client:
        reply = client.stub.ListWorkflows(control_pb2.ListWorkflowsRequest())
    rows = [
        {
            "name": w.name,
            "loaded": w.loaded,
            "coordinator": w.coordinator,
            "version": w.version,
            "description": w.description,
            "tools": list(w.tools),
            "triggers": list(w.triggers),
            "input_schema": json.loads(w.input_schema_json) if w.input_schema_json else None,
            "error": w.error or None,
        }
        for w in reply.workflows
    ]
    if args.json:
        print(json.dumps({"workflows": rows, "plugin_errors": list(reply.plugin_errors)}, indent=2))
        return EXIT_OK
    for row in rows:
        state = (
            "ok" if row["loaded"] and not row["error"] else ("stale" if row["loaded"] else "error")
        )
        coordinator, version = row["coordinator"] or "-", row["version"] or "-"
        print(f"{row['name']:<24} {state:<6} {coordinator:<7} {version:<17} {row['description']}")
        schema = row["input_schema"]
        if isinstance(schema, dict):
            print(f"    input: {_input(schema)}")
        if row["error"]:
            print("    " + str(row["error"]).replace("\n", "\n    "))
    for error in reply.plugin_errors:
        print(f"plugin error: {error}")
    if not rows:
        print(f"no workflows in {config.workflows_dir}")
    return EXIT_OK


def _input(schema: dict[str, Any]) -> str:
    """An input schema as a tool's signature reads; one that is not an object, as JSON."""
    from . import render

    if schema.get("type") == "object" and schema.get("properties"):
        return "{" + render.signature(schema) + "}"
    return json.dumps(schema, separators=(",", ":"))


def cmd_tools(config: ProjectConfig, args: argparse.Namespace) -> int:
    import grpc
    from tandem_sdk._pb import control_pb2

    with control(config) as client:
        try:
            reply = client.stub.ListWorkflowTools(
                control_pb2.ListWorkflowToolsRequest(workflow=args.workflow)
            )
        except grpc.RpcError as error:
            raise rpc_error(error) from None
    from tandem_sdk._convert import annotations_of

    from . import render

    tools = [
        {
            "name": t.name,
            "description": t.description,
            "side_effects": t.side_effects,
            "annotations": annotations_of(t).to_json(),
            "dry_run_result": json.loads(t.dry_run_result_json) if t.dry_run_result_json else None,
            "input_schema": json.loads(t.input_schema_json),
        }
        for t in reply.tools
    ]
    for problem in reply.plugin_errors:  # what is missing from the list, and why
        print(f"not loaded: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(tools, indent=2))
        return EXIT_OK
    for tool, spec in zip(tools, reply.tools, strict=True):
        params = render.signature(tool["input_schema"])
        effects = annotations_of(spec).describe()
        summary = tool["description"].splitlines()[0] if tool["description"] else ""
        print(f"{tool['name']}({params})  [{effects}]\n    {summary}")
    return EXIT_OK


def cmd_status(config: ProjectConfig, args: argparse.Namespace) -> int:
    """The daemon's health, or an embedded host's when no daemon runs; exit 1 when a
    plugin is down."""
    from tandem_sdk._pb import control_pb2

    with control(config) as client:
        serving = client.socket == config.control_socket
        reply = client.stub.Health(control_pb2.HealthRequest())
    plugins = [
        {
            "name": p.name,
            "up": p.up,
            "pid": p.pid or None,
            "uid": p.uid or None,
            "restarts": p.restarts,
            "crash_loop": p.crash_loop,
            "last_error": p.last_error or None,
            "load_error": p.load_error or None,
            "kind": p.kind or "plugin",
            "version": p.version or None,
        }
        for p in reply.plugins
    ]
    healthy = all(p["up"] and not p["crash_loop"] for p in plugins)
    daemons = [
        {
            "id": d.id,
            "host": d.host,
            "pid": d.pid,
            "state_dir": d.state_dir,
            "heartbeat_age_s": round(d.heartbeat_age_s, 1),
            "in_flight": d.in_flight,
            "this": d.id == reply.daemon_id,
        }
        for d in reply.daemons
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "daemon": serving,
                    "version": reply.version,
                    "isolation": reply.isolation,
                    "plugin_isolation": reply.plugin_isolation,
                    "active_runs": reply.active_runs,
                    "zygote": {"pid": reply.zygote_pid or None, "tiers": list(reply.zygote_tiers)},
                    "plugins": plugins,
                    "daemons": daemons,
                },
                indent=2,
            )
        )
        return EXIT_OK if healthy else EXIT_RUN_FAILED
    where = f"daemon on {config.control_socket}" if serving else "no daemon (embedded host)"
    print(f"{where}; tandem {reply.version}, isolation {reply.isolation}")
    print(f"active runs: {reply.active_runs}")
    if len(daemons) > 1 or (daemons and not daemons[0]["this"]):
        print(f"daemons sharing the run store: {len(daemons)}")
        for d in daemons:
            mark = "*" if d["this"] else " "
            print(
                f"  {mark} {d['host']} pid {d['pid']}: heartbeat {d['heartbeat_age_s']:g}s ago,"
                f" {d['in_flight']} run(s) in flight ({d['state_dir']})"
            )
    if reply.zygote_tiers:
        tiers = " and ".join(reply.zygote_tiers)
        print(f"zygote: pid {reply.zygote_pid}, forks {tiers} runs")
    else:
        print("zygote: none; script runs are spawned")
    if reply.plugin_isolation == "uid":
        print("plugins: each runs as a uid of its own")
    elif reply.plugin_isolation:
        print(f"plugins: not confined ({reply.plugin_isolation.removeprefix('none: ')})")
    for plugin in plugins:
        state = "crash loop" if plugin["crash_loop"] else ("up" if plugin["up"] else "down")
        if plugin["load_error"] and not plugin["pid"]:
            state = "not loaded"
        pid = f"pid {plugin['pid']}" if plugin["pid"] else "no pid"
        uid = f", uid {plugin['uid']}" if plugin["uid"] else ""
        kind = "mcp   " if plugin["kind"] == "mcp" else "plugin"
        served = f" ({plugin['version']})" if plugin["kind"] == "mcp" and plugin["version"] else ""
        print(
            f"{kind} {plugin['name']:<16} {state:<10} {pid:<10} restarts {plugin['restarts']}"
            f"{uid}{served}"
        )
        if plugin["last_error"] and (plugin["crash_loop"] or not plugin["up"]):
            print(f"    last error: {plugin['last_error']}")
        if plugin["load_error"]:
            print(f"    {_load_problem(plugin)}")
    return EXIT_OK if healthy else EXIT_RUN_FAILED


def _load_problem(plugin: dict[str, Any]) -> str:
    what = (
        (
            "its new config does not load; the server before serves on"
            if plugin["kind"] == "mcp"
            else "its new code does not load; the code before serves on"
        )
        if plugin["up"]
        else ""
    )
    error = str(plugin["load_error"]).replace("\n", "\n    ")
    return f"{what}:\n    {error}" if what else f"does not load:\n    {error}"


def cmd_check(config: ProjectConfig, args: argparse.Namespace) -> int:
    from tandem_sdk._pb import control_pb2

    if args.sandbox:
        return check_sandbox(config)

    with control(config, prefer_daemon=False) as client:
        reply = client.stub.ListWorkflows(control_pb2.ListWorkflowsRequest())
    problems = [str(e) for e in reply.plugin_errors] + [w.error for w in reply.workflows if w.error]
    for workflow in reply.workflows:
        mark = "error" if workflow.error else "ok"
        print(f"{mark:<6} workflow {workflow.name}")
    for problem in problems:
        print(problem, file=sys.stderr)
    for warning in model_key_warnings([w.name for w in reply.workflows if w.coordinator == "llm"]):
        print(f"warning: {warning}", file=sys.stderr)
    for warning in escalation_warnings(config, [w.name for w in reply.workflows]):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(reply.workflows)} workflow(s), {len(problems)} error(s)")
    return EXIT_RUN_FAILED if problems else EXIT_OK


def model_key_warnings(llm_workflows: list[str]) -> list[str]:
    """A warning, not an error: the daemon's environment, not this one, is what counts."""
    from tandem.llm.api import KEY_VARIABLE, ModelApi

    if not llm_workflows or ModelApi.from_env().configured:
        return []
    return [
        f"workflow {name} uses coordinator llm, and {KEY_VARIABLE} is not set here:"
        " its runs fail unless the daemon's environment has it"
        for name in llm_workflows
    ]


def escalation_warnings(config: ProjectConfig, workflows: list[str]) -> list[str]:
    """A script that can escalate in a workflow with no prompt for the model."""
    from tandem.workflows.escalates import promptless_escalation

    found = (promptless_escalation(config.workflows_dir / name) for name in workflows)
    return [warning for warning in found if warning is not None]


def check_sandbox(config: ProjectConfig) -> int:
    """Print what each tier can do here; non-zero when the configured tier is unavailable."""
    from tandem.isolation.probe import probe

    report = probe()
    for line in report.lines():
        print(line)
    tier = report.tiers[config.isolation]
    fallback = config.isolation_fallback and report.tiers["process"].available
    usable = tier.available or fallback
    verdict = "uses" if tier.available else ("falls back to process from" if fallback else "lacks")
    print(f"this project {verdict} isolation {config.isolation!r}")
    return EXIT_OK if usable else EXIT_RUN_FAILED
