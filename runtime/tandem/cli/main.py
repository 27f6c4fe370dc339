"""Tandem: serve the daemon, trigger runs, and look at workflows, tools and runs.

Every command but `serve` talks to the project's daemon over its Control socket when one
is running, and otherwise to a host embedded in this process for the one command.
Exit codes: 0 success, 1 a run that did not succeed (or `check` found errors), 2 usage or
configuration errors.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from tandem.config import ProjectConfig
    from tandem.store import Event

    from .control_client import ControlClient

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tandem", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=None, help="project folder (default: .)")
    parser.add_argument(
        "--workflows", type=Path, help="workflows folder (default: PROJECT/workflows)"
    )
    parser.add_argument(
        "--plugins",
        type=Path,
        action="append",
        help="plugin folder; repeat for more (default: PROJECT/plugins)",
    )
    parser.add_argument("--state", type=Path, help="state folder (default: PROJECT/.tandem)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the host daemon")
    serve.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds runs in flight get on SIGTERM before they are cancelled",
    )
    serve.add_argument(
        "--no-reload", action="store_true", help="do not watch workflows for changes"
    )
    serve.add_argument(
        "--isolation",
        choices=["process", "namespace"],
        help="isolation tier for script runs (default: namespace, or tandem.yaml's)",
    )
    serve.add_argument(
        "--isolation-fallback",
        action="store_true",
        default=None,
        help="start with the process tier when the namespace tier is unavailable",
    )
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve webhook triggers over HTTP here (PORT alone binds to loopback)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    run = commands.add_parser("run", help="trigger one run and wait for it")
    run.add_argument("workflow")
    run.add_argument("--payload", default="null", help="trigger payload: JSON text, or @file")
    run.add_argument("--coordinator", choices=["llm", "script"], help="override for this one run")
    run.add_argument("--json", action="store_true", help="print the run record as JSON")
    run.add_argument("--follow", action="store_true", help="print the trace as it happens")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="read-only tools run; every other call is planned, not made",
    )
    run.add_argument(
        "--model-replies",
        metavar="FILE|run:RUN_ID",
        help="answer the model with scripted turns (a YAML or JSON file, or run:RUN_ID to"
        " replay a recorded run's); runs on a host in this process, not the daemon",
    )

    replay = commands.add_parser(
        "replay", help="replay recorded runs through the current workflow; diff the tool plans"
    )
    replay.add_argument("run_id", nargs="?", default="", metavar="RUN_ID")
    replay.add_argument("--coordinator", choices=["llm", "script"], help="replay with this one")
    replay.add_argument(
        "--workflow",
        metavar="NAME|PATH",
        help="with --last: whose runs; a folder: replay against it",
    )
    replay.add_argument("--last", type=int, default=0, metavar="N", help="the last N runs")
    replay.add_argument(
        "--live-reads", action="store_true", help="run unrecorded read-only calls for real"
    )
    replay.add_argument(
        "--strict-order", action="store_true", help="calls made in another order disagree"
    )
    replay.add_argument("--json", action="store_true")

    from . import approve as approve_cli
    from . import new as new_cli
    from . import rewrite as rewrite_cli
    from . import shadow as shadow_cli
    from . import stats as stats_cli

    shadow_cli.add_parser(commands)
    rewrite_cli.add_parser(commands)
    approve_cli.add_parser(commands)
    stats_cli.add_parser(commands)
    new_cli.add_parser(commands)

    workflows = commands.add_parser("workflows", help="list workflows, with load errors")
    workflows.add_argument("--json", action="store_true")

    tools = commands.add_parser("tools", help="list tools (those in a workflow's scope, if given)")
    tools.add_argument("workflow", nargs="?", default="")
    tools.add_argument("--json", action="store_true")

    runs = commands.add_parser("runs", help="list runs; `runs show|export|flag ID` for one run")
    runs.add_argument("--workflow", default="")
    runs.add_argument("--coordinator", default="", choices=["", "llm", "script"])
    runs.add_argument("--mode", default="", choices=["", "live", "dry_run", "replay"])
    runs.add_argument("--flagged", action="store_true", help="only runs flagged as wrong")
    runs.add_argument("--since", help="an ISO date or time, or an age like 2h or 7d")
    runs.add_argument("--until", help="an ISO date or time, or an age like 30m")
    runs.add_argument(
        "--status",
        default="",
        choices=[
            "",
            "queued",
            "running",
            "waiting",
            "succeeded",
            "failed",
            "cancelled",
            "timed_out",
            "interrupted",
        ],
    )
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")
    runs_commands = runs.add_subparsers(dest="runs_command", metavar="show|export|flag|cancel")
    show = runs_commands.add_parser("show", help="one run with its trace")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    export = runs_commands.add_parser("export", help="write a run as a test fixture")
    export.add_argument("run_id")
    export.add_argument("folder", help="where to write <workflow>-<run id>.json")
    flag = runs_commands.add_parser("flag", help="mark a run as wrong, saying why")
    flag.add_argument("run_id")
    flag.add_argument("reason", nargs="?", default="")
    flag.add_argument(
        "--call",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="the wrong call, numbered as `runs show` numbers them; repeatable",
    )
    flag.add_argument("--clear", action="store_true", help="remove the flag")
    cancel = runs_commands.add_parser("cancel", help="cancel a queued or running run")
    cancel.add_argument("run_id")

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
    return parser


def entry() -> NoReturn:
    """The `tandem` command. What the command made is frozen before the interpreter exits,
    so its last garbage collection does not sweep every object gRPC, protobuf and pydantic
    made (tens of milliseconds on every command); the rest of the exit is as usual."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _config(args)
        if args.command == "serve":
            from .serve import serve

            return serve(config, args)
        # A host embedded for one command reports what its command asks about (`check`,
        # `workflows`); its log is for errors only, not every other workflow's load error.
        logging.basicConfig(level=logging.ERROR, format="tandem: %(message)s")
        return _handler(args.command)(config, args)
    except UsageError as error:
        return _fail(args, str(error))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`tandem ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        import grpc
        from tandem_sdk.errors import TandemError

        if isinstance(error, TandemError):
            return _fail(args, str(error))
        if isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.UNAVAILABLE:
            return _fail(args, f"lost the tandem daemon ({error.details()})")
        raise


# Commands defined in a module of their own, imported only when they run: a command pays
# for its own imports alone (`tandem run` starts in a fraction of a second).
_COMMANDS = {
    "replay": ("replay", "cmd_replay"),
    "shadow": ("shadow", "cmd_shadow"),
    "rewrite": ("rewrite", "cmd_rewrite"),
    "approve": ("approve", "cmd_decide"),
    "deny": ("approve", "cmd_decide"),
    "stats": ("stats", "cmd_stats"),
    "new": ("new", "cmd_new"),
    "runs": ("runs", "cmd_runs"),
}


def _handler(command: str) -> Callable[[ProjectConfig, argparse.Namespace], int]:
    local = {
        "run": cmd_run,
        "workflows": cmd_workflows,
        "tools": cmd_tools,
        "status": cmd_status,
        "check": cmd_check,
    }
    if command in local:
        return local[command]
    module, name = _COMMANDS[command]
    handler: Callable[[ProjectConfig, argparse.Namespace], int] = getattr(
        importlib.import_module(f"{__package__}.{module}"), name
    )
    return handler


def _fail(args: argparse.Namespace, message: str) -> int:
    """One line on stderr; with --json, a JSON document on stdout as well."""
    if getattr(args, "json", False):
        print(json.dumps({"error": message}))
    print(f"tandem: {message}", file=sys.stderr)
    return EXIT_USAGE


def _config(args: argparse.Namespace) -> ProjectConfig:
    from tandem.config import load_config

    return load_config(
        args.project,
        workflows_dir=args.workflows,
        plugins_dirs=args.plugins,
        state_dir=args.state,
        isolation=getattr(args, "isolation", None),
        isolation_fallback=getattr(args, "isolation_fallback", None),
        http_listen=getattr(args, "http", None),
    )


@contextlib.contextmanager
def control(
    config: ProjectConfig, *, prefer_daemon: bool = True, for_workflow: str | None = None
) -> Iterator[ControlClient]:
    """A Control client: the daemon's if one is running, else an embedded host's (with only
    the plugins `for_workflow` needs, when a command concerns one workflow)."""
    if prefer_daemon and config.control_socket.exists():
        from .control_client import ControlClient

        client = ControlClient.connect(config.control_socket)
        if client is not None:
            with contextlib.closing(client):
                yield client
            return
    # Nothing heavy is imported before the embedded host has started its plugins' processes.
    from tandem.embedded import EmbeddedHost

    plugins = needed_plugins(config, for_workflow) if for_workflow else None
    with EmbeddedHost(config, plugins) as host:
        from .control_client import ControlClient

        with contextlib.closing(ControlClient(host.control_socket)) as client:
            yield client


def needed_plugins(config: ProjectConfig, workflow: str) -> set[str] | None:
    """The plugins a workflow's `tools:` names, read from its workflow.yaml; None (all of
    them) when it cannot tell, e.g. a pattern like `*.get`."""
    import yaml

    try:
        spec = yaml.safe_load((config.workflows_dir / workflow / "workflow.yaml").read_text())
        patterns = [str(p) for p in spec.get("tools", [])]
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        return None
    plugins = {pattern.partition(".")[0] for pattern in patterns}
    if any(set(name) & set("*?[") for name in plugins):
        return None
    return plugins


def _rpc_error(error: Exception) -> UsageError:
    details = error.details() if hasattr(error, "details") else str(error)
    if "larger than max" in str(details):  # gRPC's own words for an oversized message
        from tandem_sdk.protocol import MAX_MESSAGE_BYTES

        details = (
            f"the request is over the message limit of {MAX_MESSAGE_BYTES} bytes ({details}); "
            "pass a smaller payload (a reference to the data rather than the data), or raise "
            "the limit with TANDEM_MAX_MESSAGE_BYTES in the daemon's environment and this one"
        )
    return UsageError(details)


def read_payload(text: str) -> Any:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as error:
            raise UsageError(f"--payload: cannot read {text[1:]}: {error.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--payload is not valid JSON: {error}") from None


def cmd_run(config: ProjectConfig, args: argparse.Namespace) -> int:
    payload = read_payload(args.payload)
    scripted = None
    if args.model_replies:
        from .model_replies import ScriptedModel

        scripted = ScriptedModel.load(config, args.model_replies)
        print(scripted.banner, file=sys.stderr if args.json else sys.stdout, flush=True)
    # The stand-in serves first: an embedded host reads the model's address when it starts.
    with (
        scripted.serve() if scripted is not None else contextlib.nullcontext(),
        control(config, prefer_daemon=scripted is None, for_workflow=args.workflow) as client,
    ):
        import grpc

        from . import render

        try:
            run_id = client.trigger(args.workflow, payload, args.coordinator, dry_run=args.dry_run)
        except grpc.RpcError as error:
            raise _rpc_error(error) from None
        renderer = render.TraceRenderer()

        def show(event: Event) -> None:
            if args.follow:
                print(
                    renderer.line(event), file=sys.stderr if args.json else sys.stdout, flush=True
                )

        from .control_client import ControlClient
        from .follow import DaemonLost, follow

        through_daemon = client.socket == config.control_socket
        first = client
        try:
            client, record = follow(
                client,
                run_id,
                show,
                reconnect=(lambda: ControlClient.connect(config.control_socket))
                if through_daemon
                else None,
            )
        except DaemonLost as lost:
            raise UsageError(str(lost)) from None
        except KeyboardInterrupt:
            client.cancel(run_id)
            raise
        try:
            stale = _stale_warning(client, args.workflow)
        finally:
            if client is not first:
                client.close()  # a client to a daemon that came back
    if args.json:
        print(json.dumps({**record.to_json(), "warning": stale}, indent=2))
    else:
        print(render.format_run(record, trace=False))
    if stale:
        print(f"tandem: warning: {stale}", file=sys.stderr)
    code = EXIT_OK if record.status == "succeeded" else EXIT_RUN_FAILED
    return scripted.finish(record, code) if scripted is not None else code


def _stale_warning(client: ControlClient, workflow: str) -> str | None:
    """Set when the run got the workflow's last good version: its files fail to load."""
    from tandem_sdk._pb import control_pb2

    reply = client.stub.ListWorkflows(control_pb2.ListWorkflowsRequest())
    for info in reply.workflows:
        if info.name == workflow and info.loaded and info.error:
            return (
                f"workflow {workflow} ran its last good version ({info.version}): "
                f"its files now fail to load:\n{info.error}"
            )
    return None


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
        if row["error"]:
            print("    " + str(row["error"]).replace("\n", "\n    "))
    for error in reply.plugin_errors:
        print(f"plugin error: {error}")
    if not rows:
        print(f"no workflows in {config.workflows_dir}")
    return EXIT_OK


def cmd_tools(config: ProjectConfig, args: argparse.Namespace) -> int:
    import grpc
    from tandem_sdk._pb import control_pb2

    with control(config) as client:
        try:
            reply = client.stub.ListWorkflowTools(
                control_pb2.ListWorkflowToolsRequest(workflow=args.workflow)
            )
        except grpc.RpcError as error:
            raise _rpc_error(error) from None
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
            "restarts": p.restarts,
            "crash_loop": p.crash_loop,
            "last_error": p.last_error or None,
        }
        for p in reply.plugins
    ]
    healthy = all(p["up"] and not p["crash_loop"] for p in plugins)
    if args.json:
        print(
            json.dumps(
                {
                    "daemon": serving,
                    "version": reply.version,
                    "isolation": reply.isolation,
                    "active_runs": reply.active_runs,
                    "zygote": {"pid": reply.zygote_pid or None, "tiers": list(reply.zygote_tiers)},
                    "plugins": plugins,
                },
                indent=2,
            )
        )
        return EXIT_OK if healthy else EXIT_RUN_FAILED
    where = f"daemon on {config.control_socket}" if serving else "no daemon (embedded host)"
    print(f"{where}; tandem {reply.version}, isolation {reply.isolation}")
    print(f"active runs: {reply.active_runs}")
    if reply.zygote_tiers:
        tiers = " and ".join(reply.zygote_tiers)
        print(f"zygote: pid {reply.zygote_pid}, forks {tiers} runs")
    else:
        print("zygote: none; script runs are spawned")
    for plugin in plugins:
        state = "crash loop" if plugin["crash_loop"] else ("up" if plugin["up"] else "down")
        pid = f"pid {plugin['pid']}" if plugin["pid"] else "no pid"
        print(f"plugin {plugin['name']:<16} {state:<10} {pid:<10} restarts {plugin['restarts']}")
        if plugin["last_error"] and (plugin["crash_loop"] or not plugin["up"]):
            print(f"    last error: {plugin['last_error']}")
    return EXIT_OK if healthy else EXIT_RUN_FAILED


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
