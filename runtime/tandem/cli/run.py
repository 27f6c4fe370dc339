"""`tandem run`: trigger one run, follow it, and print how it ended."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, EXIT_RUN_FAILED, UsageError, model_control, read_payload, rpc_error

if TYPE_CHECKING:
    from tandem.client import ControlClient
    from tandem.config import ProjectConfig
    from tandem.store import Event


def add_parser(commands: Any) -> None:
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


def cmd_run(config: ProjectConfig, args: argparse.Namespace) -> int:
    payload = read_payload(args.payload)
    with model_control(config, args.model_replies, quiet=args.json, for_workflow=args.workflow) as (
        client,
        scripted,
    ):
        import grpc

        from . import render

        try:
            run_id = client.trigger(args.workflow, payload, args.coordinator, dry_run=args.dry_run)
        except grpc.RpcError as error:
            raise rpc_error(error) from None
        if client.socket == config.control_socket:  # the daemon's plugins, its environment
            from .environment import environment_warnings

            for warning in environment_warnings(client, args.workflow):
                print(f"tandem: warning: {warning}", file=sys.stderr, flush=True)
        renderer = render.TraceRenderer()

        def show(event: Event) -> None:
            if args.follow:
                print(
                    renderer.line(event), file=sys.stderr if args.json else sys.stdout, flush=True
                )

        from tandem.client import ControlClient

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
            if client.cancel(run_id):
                print(f"run {run_id} cancelled", file=sys.stderr, flush=True)
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
